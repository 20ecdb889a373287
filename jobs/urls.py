from django.urls import path

from jobs import views

app_name = "jobs"
urlpatterns = [
    path("<int:pk>/", views.job_detail_view, name="detail"),
    path("<int:pk>/cancel/", views.job_cancel_view, name="cancel"),
    path("projects/<int:pk>/webhook-test/", views.webhook_test_view, name="webhook_test"),
]

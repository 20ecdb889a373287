from django.urls import path

from projects import views

app_name = "projects"
urlpatterns = [
    path("", views.project_list_view, name="list"),
    path("projects/new/", views.project_create_view, name="create"),
    path("projects/<int:pk>/", views.project_overview_view, name="overview"),
    path("projects/<int:pk>/problem/", views.problem_view, name="problem"),
    path("projects/<int:pk>/decision/", views.decision_view, name="decision"),
    path("projects/<int:pk>/delete/", views.project_delete_view, name="delete"),
    path("projects/<int:pk>/members/", views.members_view, name="members"),
    path("projects/<int:pk>/members/<int:user_id>/", views.member_change_view, name="member"),
    path("projects/<int:pk>/audit/", views.audit_view, name="audit"),
    path("projects/<int:pk>/jobs/", views.jobs_view, name="jobs"),
    path("projects/<int:pk>/webhook/", views.webhook_view, name="webhook"),
]

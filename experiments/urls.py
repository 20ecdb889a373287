from django.urls import path

from experiments import views

app_name = "experiments"
urlpatterns = [
    path("projects/<int:pk>/experiments/", views.experiment_list_view, name="list"),
    path("projects/<int:pk>/experiments/new/", views.experiment_create_view, name="create"),
    path("experiments/<int:experiment_id>/", views.experiment_detail_view, name="detail"),
    path("experiments/<int:experiment_id>/cancel/", views.experiment_cancel_view, name="cancel"),
    path("experiments/<int:experiment_id>/tune/", views.experiment_tune_view, name="tune"),
    path("experiments/<int:experiment_id>/evaluate/", views.experiment_evaluate_view, name="evaluate"),
    path("experiments/<int:experiment_id>/compare/", views.compare_view, name="compare"),
    path("runs/<int:run_id>/", views.run_detail_view, name="run"),
    path("runs/<int:run_id>/diagnose/", views.run_diagnose_view, name="diagnose"),
]

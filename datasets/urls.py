from django.urls import path

from datasets import views

app_name = "datasets"
urlpatterns = [
    path("projects/<int:pk>/datasets/", views.datasets_view, name="list"),
    path("datasets/<int:dataset_id>/", views.dataset_detail_view, name="detail"),
    path("dataset-versions/<int:version_id>/", views.version_detail_view, name="version"),
    path("dataset-versions/<int:version_id>/recipe/auto/", views.recipe_auto_view, name="recipe-auto"),
    path("dataset-versions/<int:version_id>/recipe/preview/", views.recipe_preview_view, name="recipe-preview"),
]

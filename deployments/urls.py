from deployments import monitoring_views, review_views, views

app_name = "deployments"
urlpatterns = [*views.urlpatterns, *review_views.urlpatterns, *monitoring_views.urlpatterns]

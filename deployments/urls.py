"""The deployments app's pages: each room's views (URL names are the public contract)."""

from deployments.batch import views as batch_views
from deployments.monitoring import views as monitoring_views
from deployments.registry import views as registry_views
from deployments.reviews import views as review_views
from deployments.rollout import views as rollout_views

app_name = "deployments"
urlpatterns = [
    *registry_views.urlpatterns,
    *rollout_views.urlpatterns,
    *batch_views.urlpatterns,
    *review_views.urlpatterns,
    *monitoring_views.urlpatterns,
]

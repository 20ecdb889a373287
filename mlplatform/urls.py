from __future__ import annotations

import importlib

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.routers import DefaultRouter

from mlplatform import views as platform_views
from mlplatform.api_views import VersionApi

# Each app registers its API viewsets in `<app>/api_urls.py` (`register(router)`, and its explicit
# `urlpatterns`), so apps grow their API without touching this file. This module is the
# composition root: it finds the apps by name, and imports none of them.
API_APPS = ["accounts", "projects", "jobs", "datasets", "experiments", "deployments"]


class Router(DefaultRouter):
    include_root_view = False


router = Router()
extra_api_urls = []
for app in API_APPS:
    module = importlib.import_module(f"{app}.api_urls")
    module.register(router)
    extra_api_urls += getattr(module, "urlpatterns", [])

api_urlpatterns = [
    path("version/", VersionApi.as_view(), name="api-version"),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    *extra_api_urls,
    *router.urls,
]

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("accounts.root_urls")),  # /login/ (throttled): accounts owns sign-in
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("healthz/", platform_views.healthz, name="healthz"),
    path("favicon.ico", platform_views.favicon, name="favicon"),
    path("api/v1/", include(api_urlpatterns)),
    path("account/", include("accounts.urls")),
    path("jobs/", include("jobs.urls")),
    # App pages live under /projects/<pk>/<app>/... and /<app>/<id>/...; each app's urls.py
    # spells out its own paths.
    path("", include("datasets.urls")),
    path("", include("experiments.urls")),
    path("", include("deployments.urls")),
    path("", include("projects.urls")),
]

handler403 = "mlplatform.views.forbidden"
handler404 = "mlplatform.views.not_found"

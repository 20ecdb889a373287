"""Sign-in pages at the site root (`/login/`), included by the composition root by name."""

from django.urls import path

from accounts import views

urlpatterns = [path("login/", views.LoginView.as_view(), name="login")]

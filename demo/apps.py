from django.apps import AppConfig


class DemoConfig(AppConfig):
    """`make demo`: the demo users, the demo project and its whole loop (the top of the layers:
    it uses every app, and no app uses it)."""

    name = "demo"
    default_auto_field = "django.db.models.BigAutoField"

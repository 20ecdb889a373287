from django.apps import AppConfig
from django.db.models.signals import post_delete, post_save


def _serving_changed(sender, **kwargs) -> None:
    from deployments.serving.keys import serving_changed

    serving_changed()


class DeploymentsConfig(AppConfig):
    name = "deployments"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Every web process caches API keys with their deployment (deployments.serving.keys): any
        # change to either, however it is made, drops those caches everywhere.
        from deployments.models import ApiKey, Deployment

        for model in (Deployment, ApiKey):
            post_save.connect(_serving_changed, sender=model, dispatch_uid=f"serving-changed-save-{model.__name__}")
            post_delete.connect(_serving_changed, sender=model, dispatch_uid=f"serving-changed-del-{model.__name__}")

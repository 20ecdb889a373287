"""Read-mostly admin for operators; every change goes through the services (audited)."""

from django.contrib import admin

from deployments.models import ApiKey, Deployment, DeploymentChange, ModelVersion, PredictionErrorCount


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = ["project", "version", "name", "task_type", "size_bytes", "created_at"]
    list_filter = ["task_type"]
    readonly_fields = [f.name for f in ModelVersion._meta.fields]

    def has_add_permission(self, request):  # models come from our own workers only
        return False


@admin.register(Deployment)
class DeploymentAdmin(admin.ModelAdmin):
    list_display = ["project", "name", "model_version", "status", "created_at"]
    list_filter = ["status"]
    readonly_fields = ["model_version", "shadow_model_version", "gate_override", "created_by"]


@admin.register(DeploymentChange)
class DeploymentChangeAdmin(admin.ModelAdmin):
    list_display = ["deployment", "action", "from_version", "to_version", "actor", "created_at"]
    readonly_fields = [f.name for f in DeploymentChange._meta.fields]


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ["deployment", "name", "prefix", "rate_per_minute", "last_used_at", "revoked_at"]
    readonly_fields = ["key_hash", "prefix", "last_used_at", "created_by"]


@admin.register(PredictionErrorCount)
class PredictionErrorCountAdmin(admin.ModelAdmin):
    list_display = ["deployment", "minute", "kind", "count"]

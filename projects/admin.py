from django.contrib import admin

from projects.models import AuditEvent, Membership, Project


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    fk_name = "project"
    raw_id_fields = ["user", "added_by"]


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ["name", "task_type", "success_metric", "decision", "created_at"]
    inlines = [MembershipInline]
    raw_id_fields = ["created_by", "decided_by"]


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ["created_at", "actor_label", "action", "object_type", "object_id", "project"]
    list_filter = ["action"]

    def has_change_permission(self, request, obj=None):
        return False

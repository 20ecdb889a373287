"""Every project gets a real webhook signing secret (issue 12).

Projects created before had none (deliveries were signed with an empty key). A project that
already had a secret keeps it and counts as shown (someone set it); the others get a new one,
shown once to the first owner who asks on the project's Webhook page (or rotated over the API).
"""

import secrets

from django.db import migrations
from django.utils import timezone


def give_secrets(apps, schema_editor):
    Project = apps.get_model("projects", "Project")
    now = timezone.now()
    Project.objects.exclude(webhook_secret="").update(webhook_secret_created_at=now, webhook_secret_shown_at=now)
    for project in Project.objects.filter(webhook_secret="").only("pk").iterator():
        Project.objects.filter(pk=project.pk).update(
            webhook_secret="whsec_" + secrets.token_urlsafe(32), webhook_secret_created_at=now
        )


class Migration(migrations.Migration):
    dependencies = [
        ("projects", "0002_webhook_secret_fields"),
    ]

    operations = [migrations.RunPython(give_secrets, migrations.RunPython.noop)]

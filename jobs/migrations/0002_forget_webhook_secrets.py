"""Finished webhook deliveries forget the signing secret and URL they carried (issue 12).

Job params were shown to every role; webhook jobs held the secret in them. Finished jobs no
longer need it; queued and running ones keep it until they end (the runner erases it then),
and no API or page shows it any more (jobs.redaction).
"""

from django.db import migrations

FINISHED = ("succeeded", "failed", "cancelled")


def forget(apps, schema_editor):
    Job = apps.get_model("jobs", "Job")
    rows = Job.objects.filter(kind="webhook.deliver", status__in=FINISHED, params__has_key="secret")
    for job in rows.only("pk", "params").iterator():
        params = {k: v for k, v in job.params.items() if k not in ("secret", "url")}
        Job.objects.filter(pk=job.pk).update(params=params)


class Migration(migrations.Migration):
    dependencies = [
        ("jobs", "0001_initial"),
    ]

    operations = [migrations.RunPython(forget, migrations.RunPython.noop)]

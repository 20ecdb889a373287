from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("deployments", "0009_model_version_archived_at"),
    ]

    operations = [
        migrations.AddField(
            model_name="predictionsegment",
            name="segment_only_rows",
            field=models.PositiveIntegerField(default=0),
        ),
    ]

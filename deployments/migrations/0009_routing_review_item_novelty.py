from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("deployments", "0006_retire_and_decision_threshold"),
    ]

    operations = [
        migrations.AddField(
            model_name="reviewitem",
            name="novelty",
            field=models.JSONField(blank=True, null=True),
        ),
    ]

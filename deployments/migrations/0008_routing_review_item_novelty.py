from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("deployments", "0007_columnar_segments"),
    ]

    operations = [
        migrations.AddField(
            model_name="reviewitem",
            name="novelty",
            field=models.JSONField(blank=True, null=True),
        ),
    ]

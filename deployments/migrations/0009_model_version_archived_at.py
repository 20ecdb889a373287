from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("deployments", "0008_routing_review_item_novelty"),
    ]

    operations = [
        migrations.AddField(
            model_name="modelversion",
            name="archived_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
    ]

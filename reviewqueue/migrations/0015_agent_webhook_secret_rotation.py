# A webhook secret rotated with a grace period: the old one keeps signing
# deliveries (beside the new one) until the grace ends.

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('reviewqueue', '0014_agent_names_refusals_wait_slots'),
    ]

    operations = [
        migrations.AddField(
            model_name='agent',
            name='webhook_secret_previous',
            field=models.CharField(blank=True, default='', editable=False, max_length=64),
        ),
        migrations.AddField(
            model_name='agent',
            name='webhook_secret_previous_until',
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
    ]

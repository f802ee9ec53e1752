# Four eyes counts approvals of the exact payload: each approval records the
# SHA-256 of the payload it approved. Older approvals keep it empty; the
# lifecycle works out what they approved from the order of the decisions.

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('reviewqueue', '0012_audit_truncate_by_owner_only'),
    ]

    operations = [
        migrations.AddField(
            model_name='decision',
            name='payload_sha256',
            field=models.CharField(blank=True, help_text='SHA-256 of the payload an approval approved (empty on other kinds).', max_length=64),
        ),
    ]

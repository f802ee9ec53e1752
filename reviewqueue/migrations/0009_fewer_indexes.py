# Two indexes every submission paid for and no query used: Action.agent's own
# (the (agent, created_at) and (agent, conversation_id) indexes lead with it)
# and the LIKE index that unique=True builds on AuditEvent.hash on PostgreSQL.

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('reviewqueue', '0008_submit_checks_key'),
    ]

    operations = [
        migrations.AlterField(
            model_name='action',
            name='agent',
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='actions', to='reviewqueue.agent'),
        ),
        migrations.AlterField(
            model_name='auditevent',
            name='hash',
            field=models.CharField(max_length=64),
        ),
        migrations.AddConstraint(
            model_name='auditevent',
            constraint=models.UniqueConstraint(fields=('hash',), name='audit_hash_unique'),
        ),
    ]

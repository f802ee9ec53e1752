# Who decided, claimed or reviewed an action is empty on most rows (on every
# auto action): partial indexes instead of full ones, so a submission adds no
# entry to three indexes it never fills. They still serve the PROTECT checks
# when a user is deleted (decided_by_id IN (...) implies IS NOT NULL).

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('reviewqueue', '0010_leaner_audit_append'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AlterField(
            model_name='action',
            name='claimed_by',
            field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL),
        ),
        migrations.AlterField(
            model_name='action',
            name='decided_by',
            field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL),
        ),
        migrations.AlterField(
            model_name='action',
            name='reviewed_by',
            field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL),
        ),
        migrations.AddIndex(
            model_name='action',
            index=models.Index(condition=models.Q(('decided_by__isnull', False)), fields=['decided_by'], name='action_decided_by'),
        ),
        migrations.AddIndex(
            model_name='action',
            index=models.Index(condition=models.Q(('claimed_by__isnull', False)), fields=['claimed_by'], name='action_claimed_by'),
        ),
        migrations.AddIndex(
            model_name='action',
            index=models.Index(condition=models.Q(('reviewed_by__isnull', False)), fields=['reviewed_by'], name='action_reviewed_by'),
        ),
    ]

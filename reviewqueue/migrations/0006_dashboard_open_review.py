# The reviewer dashboard's queues stay fast at any depth: a partial index over
# the open async reviews (see Action.Meta.indexes, "action_review_open").

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("reviewqueue", "0005_action_type_index"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="action",
            index=models.Index(
                condition=models.Q(("review_state", "awaiting_review")),
                fields=["created_at"],
                name="action_review_open",
            ),
        ),
    ]

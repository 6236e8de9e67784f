"""The member's index on tier changes, which tierchange_member (member,
-changed_at) serves (it begins with the member): one index fewer for every
tier change written (an import's, issue 10).

Only the index goes: Django's AlterField would drop and re-add the foreign
key as well, checking every row of the table again.
"""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("loyalty", "0006_purchase_indexes"),
        ("members", "0005_unread_indexes"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunSQL(
                    'DROP INDEX IF EXISTS "loyalty_tierchange_member_id_f4de6cd7"',
                    reverse_sql='CREATE INDEX "loyalty_tierchange_member_id_f4de6cd7" '
                    'ON "loyalty_tierchange" ("member_id")',
                ),
            ],
            state_operations=[
                migrations.AlterField(
                    model_name="tierchange",
                    name="member",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="tier_changes",
                        to="members.member",
                    ),
                ),
            ],
        ),
    ]

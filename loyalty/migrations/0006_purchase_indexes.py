"""Two indexes that every purchase wrote and no query used (the purchase's
tables, issue 14): the store's index on purchases, which
purchase_receipt_unique (store, receipt_id) serves, and the member's index
on qualifying months, which qualifying_member_month (member, month) serves.

Only the indexes go: Django's AlterField would drop and re-add the foreign
keys as well, checking every row of the tables again.
"""

import django.db.models.deletion
from django.db import migrations, models

INDEXES = [
    ("loyalty_purchase_store_id_db150259", "loyalty_purchase", "store_id"),
    ("loyalty_qualifyingmonth_member_id_fe980728", "loyalty_qualifyingmonth", "member_id"),
]


class Migration(migrations.Migration):
    dependencies = [
        ("club", "0002_retention_privacy"),
        ("loyalty", "0004_points_64_bit"),
        ("members", "0004_staff_permissions"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunSQL(
                    f'DROP INDEX IF EXISTS "{name}"',
                    reverse_sql=f'CREATE INDEX "{name}" ON "{table}" ("{column}")',
                )
                for name, table, column in INDEXES
            ],
            state_operations=[
                migrations.AlterField(
                    model_name="purchase",
                    name="store",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="club.store",
                    ),
                ),
                migrations.AlterField(
                    model_name="qualifyingmonth",
                    name="member",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="members.member",
                    ),
                ),
            ],
        ),
    ]

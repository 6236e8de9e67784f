"""Indexes that every member and card written (an import's million of them)
kept up and no query reads (pg_stat_user_indexes after the test suite and
the imports' bench; issue 10):

- the `varchar_pattern_ops` (`*_like`) twins Django adds beside the unique
  indexes on the member number and the card number: they only serve
  `LIKE 'prefix%'`, which no query of the service runs on these columns;
  equality (every lookup) is served by the unique indexes;
- the index on the enrolment store, replaced by one of the members that
  have one (imported members, and those enrolled online, have none): a
  store's members are still found by an index.

Only the indexes go: Django's AlterField would drop and re-add the foreign
key as well, checking every row of the table again.
"""

import django.db.models.deletion
from django.db import migrations, models

# name, table, column, operator class
INDEXES = [
    (
        "members_member_member_number_a895ad8a_like",
        "members_member",
        "member_number",
        "varchar_pattern_ops",
    ),
    ("members_card_number_dd3a32b4_like", "members_card", "number", "varchar_pattern_ops"),
    ("members_member_enrolment_store_id_9c41929e", "members_member", "enrolment_store_id", ""),
]


class Migration(migrations.Migration):
    dependencies = [
        ("club", "0002_retention_privacy"),
        ("members", "0004_staff_permissions"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunSQL(
                    f'DROP INDEX IF EXISTS "{name}"',
                    reverse_sql=f'CREATE INDEX "{name}" ON "{table}" ("{column}" {opclass})',
                )
                for name, table, column, opclass in INDEXES
            ],
            state_operations=[
                migrations.AlterField(
                    model_name="member",
                    name="enrolment_store",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="club.store",
                    ),
                ),
            ],
        ),
        migrations.AddIndex(
            model_name="member",
            index=models.Index(
                condition=models.Q(("enrolment_store__isnull", False)),
                fields=["enrolment_store"],
                name="member_enrolment_store",
            ),
        ),
    ]

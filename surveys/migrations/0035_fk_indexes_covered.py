"""Three foreign keys lose their own index: a composite index already leads with each column
(assignment_unique, response_one_per_instrument, audit_participant_at), so the single-column
one only cost writes (every submit inserted into two of them).

Only the indexes are dropped: Django's own AlterField would also drop and re-add each foreign
key constraint on PostgreSQL (re-checking every row under a lock) and rebuild the tables on
SQLite. The index names are Django's, the same on both.
"""

import django.db.models.deletion
from django.db import migrations, models

DROPPED = [
    ("surveys_assignment", "participant_id", "surveys_assignment_participant_id_83dce6df"),
    ("surveys_response", "assignment_id", "surveys_response_assignment_id_74925468"),
    ("surveys_auditevent", "participant_id", "surveys_auditevent_participant_id_0b2a6a66"),
]


class Migration(migrations.Migration):
    dependencies = [
        ("surveys", "0034_subgroup_answers"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunSQL(
                    f'DROP INDEX IF EXISTS "{index}"',
                    f'CREATE INDEX IF NOT EXISTS "{index}" ON "{table}" ("{column}")',
                )
                for table, column, index in DROPPED
            ],
            state_operations=[
                migrations.AlterField(
                    model_name="assignment",
                    name="participant",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="assignments",
                        to="surveys.participant",
                    ),
                ),
                migrations.AlterField(
                    model_name="auditevent",
                    name="participant",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to="surveys.participant",
                    ),
                ),
                migrations.AlterField(
                    model_name="response",
                    name="assignment",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="responses",
                        to="surveys.assignment",
                    ),
                ),
            ],
        ),
    ]

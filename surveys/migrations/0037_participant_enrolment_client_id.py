"""The API enrolment's idempotency key: a nullable column (no table rewrite) and a partial
unique index per study."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("surveys", "0036_wave_recurrence_at_least_a_day"),
    ]

    operations = [
        migrations.AddField(
            model_name="participant",
            name="enrolment_client_id",
            field=models.UUIDField(blank=True, editable=False, null=True),
        ),
        migrations.AddConstraint(
            model_name="participant",
            constraint=models.UniqueConstraint(
                condition=models.Q(("enrolment_client_id__isnull", False)),
                fields=("study", "enrolment_client_id"),
                name="participant_enrolment_client_id_unique",
            ),
        ),
    ]

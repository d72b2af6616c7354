"""A recurring wave repeats at least every day: 0 divided by zero in the check-ins' periodic
task, which then stopped for every study. A wave saved with 0 never had a check-in made, so it
is turned off and made single (nothing is sent for it); its team sets it again."""

import django.core.validators
from django.db import migrations, models


def zero_recurrence_turned_off(apps, schema_editor):
    Wave = apps.get_model("surveys", "Wave")
    Wave.objects.filter(recurrence_days=0).update(recurrence_days=None, is_active=False)


class Migration(migrations.Migration):
    dependencies = [
        ("surveys", "0035_fk_indexes_covered"),
    ]

    operations = [
        migrations.RunPython(zero_recurrence_turned_off, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="wave",
            name="recurrence_days",
            field=models.PositiveIntegerField(
                blank=True,
                help_text="For recurring check-ins (7 = weekly); empty for a single wave.",
                null=True,
                validators=[django.core.validators.MinValueValidator(1)],
            ),
        ),
        migrations.AddConstraint(
            model_name="wave",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("recurrence_days__isnull", True), ("recurrence_days__gte", 1), _connector="OR"
                ),
                name="wave_recurrence_at_least_a_day",
            ),
        ),
    ]

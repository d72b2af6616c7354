"""The built-in battery's waves and instruments named in Persian in the studies made before the
names existed (a Persian text read "پرسشنامهٔ 1 month شما آماده است"). Only where the study
kept the battery's English name and has no Persian name yet: a name a study chose is not
touched. The names are written here, not imported: a migration keeps what it did."""

from django.db import migrations

WAVES = {
    ("baseline", "Baseline"): "آغازین",
    ("m1", "1 month"): "یک‌ماهه",
    ("m3", "3 months"): "سه‌ماهه",
    ("m6", "6 months"): "شش‌ماهه",
    ("m12", "12 months"): "دوازده‌ماهه",
    ("weekly", "Weekly check-in"): "پیگیری هفتگی",
}
INSTRUMENTS = {
    ("baseline", "Baseline"): "پرسشنامهٔ آغازین",
    ("followup", "Follow-up"): "پیگیری",
    ("checkin", "Weekly check-in"): "پیگیری هفتگی",
}


def _named(model, names: dict) -> None:
    slugs = {slug for slug, _name in names}
    for row in model.objects.filter(slug__in=slugs).only("pk", "slug", "name", "names"):
        persian = names.get((row.slug, row.name))
        if persian and not (row.names or {}).get("fa"):
            row.names = {**(row.names or {}), "fa": persian}
            row.save(update_fields=["names"])


def forwards(apps, schema_editor):
    _named(apps.get_model("surveys", "Wave"), WAVES)
    _named(apps.get_model("surveys", "Instrument"), INSTRUMENTS)


class Migration(migrations.Migration):
    dependencies = [
        ("recovery", "0001_initial"),
        ("surveys", "0035_fk_indexes_covered"),
    ]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]

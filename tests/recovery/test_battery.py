"""The built-in battery: both languages everywhere, valid items, and the study template's waves."""

import re

import pytest

from recovery.battery import (
    BASELINE,
    CHECKIN,
    CRAVING,
    FELLOWSHIPS,
    FOLLOW_UP_WAVES,
    FOLLOWUP,
    FORMATS,
    INSTRUMENTS,
    WAVES,
    ItemSpec,
)
from surveys.instruments import items_validate
from surveys.models import Assignment, Wave

# Taken from the battery before Spanish was added: exports, the synthetic cohort and the derived
# measures rely on these names, in this order.
BASELINE_VARIABLES = [
    "age",
    "gender",
    "race_ethnicity",
    "primary_substance",
    "treatment_setting",
    "justice_involved",
    "mat_status",
    "prior_mhg",
    "baseline_days_used",
    "readiness",
    "craving",
]
FOLLOWUP_VARIABLES = [
    "attended_any",
    "fellowships",
    *[
        f"mtg_{stem}_{fmt}"
        for stem in (
            "na",
            "ca",
            "cma",
            "aa",
            "ma",
            "smart",
            "lifering",
            "dharma",
            "wellbriety",
            "wfs",
            "allrecovery",
            "other",
        )
        for fmt in ("inperson", "online", "online24", "hybrid")
    ],
    "home_group",
    "has_sponsor",
    "sponsor_contact",
    "is_sponsor",
    "service_work",
    "steps_completed",
    "speaks_at_meetings",
    "member_contact_outside",
    "reads_literature",
    "mat_status",
    "mat_changed",
    "mat_stopped_pressure",
    "mat_disclosed",
    "mat_stigma",
    "craving",
    "days_opioids",
    "days_cocaine",
    "days_meth",
    "days_cannabis",
    "days_alcohol",
    "days_other",
    "any_use_since_last",
    "longest_use_run_days",
    "overdose",
    "cohesion",
    "qol_overall",
    "qol_health",
]
CHECKIN_VARIABLES = [
    "craving",
    "checkin_mtg_inperson",
    "checkin_mtg_online",
    "checkin_mtg_online24",
    "checkin_mtg_hybrid",
    "any_use_since_last",
]

# Fellowships without an official Spanish name keep their English one; "Alcohol" is the same
# word in both languages. Nothing else may be left untranslated.
SAME_IN_BOTH = {
    "Crystal Meth Anonymous",
    "Methadone Anonymous",
    "SMART Recovery",
    "LifeRing",
    "Recovery Dharma",
    "Wellbriety",
    "Women for Sobriety",
    "All Recovery",
    "Alcohol",
}

ALL_ITEMS = [
    pytest.param(slug, spec, id=f"{slug}-{spec.variable}")
    for slug, (_, specs) in INSTRUMENTS.items()
    for spec in specs
]


def _fields(specs: list[ItemSpec]) -> list[dict]:
    return [spec.as_item_fields(i) for i, spec in enumerate(specs, 1)]


def _texts(fields: dict) -> list[dict]:
    """Every participant-facing text of one item, as {"en": ..., "es": ...}."""
    texts = [fields["label"], *([fields["note"]] if fields["note"] else [])]
    texts += [choice["label"] for choice in fields["choices"]]
    texts += [fields["options"][end] for end in ("left", "right") if end in fields["options"]]
    return texts


@pytest.mark.parametrize(("slug", "spec"), ALL_ITEMS)
def test_every_item_has_an_english_and_a_spanish_label_that_differ(slug, spec):
    label = spec.as_item_fields(1)["label"]
    assert set(label) == {"en", "es"}
    assert label["en"].strip()
    assert label["es"].strip()
    assert label["es"] != label["en"]


@pytest.mark.parametrize(("slug", "spec"), ALL_ITEMS)
def test_every_choice_and_slider_end_has_both_languages(slug, spec):
    fields = spec.as_item_fields(1)
    if fields["kind"] in ("single", "multiple"):
        assert fields["choices"]
    for choice in fields["choices"]:
        assert set(choice["label"]) == {"en", "es"}
        assert choice["label"]["en"].strip()
        assert choice["label"]["es"].strip()
        if choice["label"]["en"] not in SAME_IN_BOTH:
            assert choice["label"]["es"] != choice["label"]["en"]
    if fields["kind"] == "slider":
        for end in ("left", "right"):
            text = fields["options"][end]
            assert set(text) == {"en", "es"}
            assert text["en"].strip()
            assert text["es"].strip()
            assert text["es"] != text["en"]
    if fields["note"]:
        assert set(fields["note"]) == {"en", "es"}
        assert all(value.strip() for value in fields["note"].values())


@pytest.mark.parametrize(("slug", "spec"), ALL_ITEMS)
def test_spanish_avoids_stigmatising_words(slug, spec):
    for text in _texts(spec.as_item_fields(1)):
        assert not re.search(r"\b(adict[oa]s?|abus[oa]r?|drogadict[oa]s?)\b", text["es"], re.I)


def test_fellowships_keep_their_official_names_in_spanish():
    fellowships = next(spec for spec in FOLLOWUP if spec.variable == "fellowships")
    names = {choice["code"]: choice["label"] for choice in fellowships.as_item_fields(1)["choices"]}
    assert names["1"]["es"] == "Narcóticos Anónimos"
    assert names["2"]["es"] == "Cocaína Anónimos"
    assert names["3"]["es"] == "Crystal Meth Anonymous"
    assert names["4"]["es"] == "Alcohólicos Anónimos"
    assert names["5"]["es"] == "Methadone Anonymous"
    assert names["6"]["es"] == "SMART Recovery"


def test_generated_meeting_counts_name_the_fellowship_in_spanish():
    items = {spec.variable: spec for spec in FOLLOWUP}
    assert "Narcóticos Anónimos" in items["mtg_na_inperson"].label["es"]
    assert "en persona" in items["mtg_na_inperson"].label["es"]
    assert "Cocaína Anónimos" in items["mtg_ca_hybrid"].label["es"]
    assert "otro grupo de ayuda mutua" in items["mtg_other_online"].label["es"]
    spanish = [
        items[f"mtg_{stem}_{fmt}"].label["es"] for _, stem, _ in FELLOWSHIPS for fmt, _ in FORMATS
    ]
    assert len(set(spanish)) == len(spanish)


def test_item_fields_are_copies_so_a_stored_item_never_changes_the_battery():
    fields = CRAVING.as_item_fields(1)
    fields["label"]["es"] = "changed"
    fields["options"]["left"]["es"] = "changed"
    assert CRAVING.label["es"] != "changed"
    assert CRAVING.options["left"]["es"] != "changed"


def test_an_item_spec_without_spanish_is_refused():
    with pytest.raises(ValueError, match="every text"):
        ItemSpec("x", "yesno", {"en": "Only English"})
    with pytest.raises(ValueError, match="a choice"):
        ItemSpec("x", "single", {"en": "A", "es": "B"}, [("1", "Only English")])


@pytest.mark.parametrize("slug", list(INSTRUMENTS))
def test_items_validate_accepts_every_instrument(slug):
    _, specs = INSTRUMENTS[slug]
    items_validate(_fields(specs))


def test_variable_names_of_baseline_and_follow_up_are_unchanged():
    assert [spec.variable for spec in BASELINE] == BASELINE_VARIABLES
    assert [spec.variable for spec in FOLLOWUP] == FOLLOWUP_VARIABLES


def test_checkin_instrument_reuses_craving_and_counts_meetings_by_format():
    assert INSTRUMENTS["checkin"] == ("Weekly check-in", CHECKIN)
    assert [spec.variable for spec in CHECKIN] == CHECKIN_VARIABLES
    assert CHECKIN[0] is CRAVING
    for spec in CHECKIN[1:5]:
        assert (spec.kind, spec.min_value, spec.max_value) == ("integer", 0, 50)
    assert CHECKIN[5].kind == "yesno"


def test_weekly_wave_comes_last_and_follow_up_waves_are_the_single_ones():
    assert WAVES[-1].slug == "weekly"
    weekly = WAVES[-1]
    assert (weekly.offset_days, weekly.window_before_days, weekly.window_after_days) == (7, 0, 3)
    assert (weekly.recurrence_days, weekly.active, weekly.instrument) == (7, False, "checkin")
    assert [wave.slug for wave in FOLLOW_UP_WAVES] == ["baseline", "m1", "m3", "m6", "m12"]
    assert all(wave.recurrence_days is None and wave.active for wave in FOLLOW_UP_WAVES)


def test_study_template_has_the_checkin_instrument_and_an_inactive_weekly_wave(study):
    checkin = study.instruments.get(slug="checkin")
    version = checkin.versions.get(number=1)
    assert list(version.items.values_list("variable", flat=True)) == CHECKIN_VARIABLES
    craving = version.items.get(variable="craving")
    assert craving.label == CRAVING.label
    assert craving.options["left"] == CRAVING.options["left"]

    waves = list(study.waves.order_by("position"))
    assert [wave.slug for wave in waves] == ["baseline", "m1", "m3", "m6", "m12", "weekly"]
    weekly = waves[-1]
    assert weekly.is_active is False
    assert weekly.recurrence_days == 7
    assert (weekly.offset_days, weekly.window_before_days, weekly.window_after_days) == (7, 0, 3)
    assert list(weekly.instruments.all()) == [checkin]
    assert all(wave.is_active and wave.recurrence_days is None for wave in waves[:-1])


def test_template_items_are_stored_in_both_languages(study):
    followup = study.instruments.get(slug="followup").versions.get(number=1)
    for item in followup.items.all():
        assert set(item.label) == {"en", "es"}
        assert all(set(choice["label"]) == {"en", "es"} for choice in item.choices)
    assert followup.items.get(variable="overdose").text("es").startswith("Desde su última")


def test_enrolment_gives_no_assignment_for_the_inactive_weekly_wave(site_a, enrol):
    participant = enrol(site=site_a)
    weekly = Wave.objects.get(study=site_a.study, slug="weekly")
    assert not Assignment.objects.filter(participant=participant, wave=weekly).exists()
    assert sorted(participant.assignments.values_list("wave__slug", flat=True)) == sorted(
        ["baseline", "m1", "m3", "m6", "m12"]
    )


def test_studies_made_before_the_persian_names_get_them_unless_they_renamed(study):
    """The data migration (recovery 0002): the battery's waves and instruments of an older study
    get their Persian names; a wave the study renamed, and a Persian name already there, stay."""
    import importlib

    from django.apps import apps

    from surveys.models import Instrument, Wave

    migration = importlib.import_module("recovery.migrations.0002_persian_battery_names")
    Wave.objects.filter(study=study).update(names={"es": "x"})  # as made before the names
    Instrument.objects.filter(study=study).update(names={})
    Wave.objects.filter(study=study, slug="m3").update(name="Three months on")
    Wave.objects.filter(study=study, slug="m6").update(names={"fa": "ششم"})
    migration.forwards(apps, None)
    names = {w.slug: w.names for w in Wave.objects.filter(study=study)}
    assert names["m1"] == {"es": "x", "fa": "یک‌ماهه"}
    assert names["m3"] == {"es": "x"}  # renamed by the study: not touched
    assert names["m6"] == {"fa": "ششم"}
    followup = Instrument.objects.get(study=study, slug="followup")
    assert followup.names == {"fa": "پیگیری"}

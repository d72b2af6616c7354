from datetime import date

import pytest

from recovery import measures
from recovery.synthetic import generate_cohort
from surveys import derived

BASE = {
    "attended_any": 1,
    "fellowships": ["1", "6"],
    "mtg_na_inperson": 6,
    "mtg_na_online": 2,
    "mtg_na_online24": 1,
    "mtg_na_hybrid": 0,
    "mtg_smart_inperson": 0,
    "mtg_smart_online": 3,
    "mtg_smart_online24": 0,
    "mtg_smart_hybrid": 0,
    "home_group": 1,
    "has_sponsor": 1,
    "service_work": 1,
    "member_contact_outside": 0,
    "mat_status": "2",
    "craving": 7,
    "days_opioids": 3,
    "days_cocaine": 5,
    "days_meth": 0,
    "days_cannabis": 0,
    "days_alcohol": 0,
    "days_other": 0,
    "any_use_since_last": 1,
    "longest_use_run_days": 3,
}


def test_the_engine_knows_every_measure_of_the_battery_by_its_documented_name():
    names = {m.name for m in derived.measures("followup")}
    assert names == {
        "meetings_total",
        "meetings_online_share",
        "involvement_index",
        "high_involvement",
        "any_use",
        "days_used",
        "craving",
        "lapse_relapse",
        "mat_mhg_class",
    }
    assert all(m.formula and m.label for m in derived.measures())


def test_measures_of_a_worked_example():
    values = derived.compute("followup", BASE)
    assert values == {
        "meetings_total": 12,
        "meetings_online_share": pytest.approx(6 / 12),
        "involvement_index": 4,
        "high_involvement": 1,
        "any_use": 1,
        "days_used": 5,
        "craving": 7,
        "lapse_relapse": "lapse",
        "mat_mhg_class": "both",
    }


@pytest.mark.parametrize(
    "change, measure, expected",
    [
        ({"attended_any": 0}, "meetings_total", 0),
        ({"attended_any": 0}, "meetings_online_share", None),
        ({"attended_any": 0}, "high_involvement", 0),
        ({"attended_any": 0}, "mat_mhg_class", "medication_only"),
        (
            {"mtg_na_inperson": 0, "mtg_na_online": 0, "mtg_na_online24": 0, "mtg_smart_online": 3},
            "high_involvement",
            0,
        ),
        (
            {"mtg_na_inperson": 0, "mtg_na_online": 0, "mtg_na_online24": 0, "mtg_smart_online": 4},
            "high_involvement",
            1,
        ),
        ({"service_work": 0}, "high_involvement", 0),
        ({"service_work": 0}, "involvement_index", 3),
        ({"member_contact_outside": 1}, "involvement_index", 5),
        ({"mat_status": "0"}, "mat_mhg_class", "mhg_only"),
        ({"mat_status": "0", "attended_any": 0}, "mat_mhg_class", "neither"),
        ({"longest_use_run_days": 7}, "lapse_relapse", "lapse"),
        ({"longest_use_run_days": 8}, "lapse_relapse", "between"),
        ({"longest_use_run_days": 13}, "lapse_relapse", "between"),
        ({"longest_use_run_days": 14}, "lapse_relapse", "relapse"),
        ({"any_use_since_last": 0}, "lapse_relapse", "none"),
        ({"days_opioids": 0, "days_cocaine": 0}, "any_use", 0),
        ({"home_group": None}, "involvement_index", None),
        ({"days_meth": None}, "days_used", None),
    ],
)
def test_each_measure_follows_its_definition(change, measure, expected):
    answers = {k: v for k, v in {**BASE, **change}.items() if v is not None}
    assert derived.compute("followup", answers)[measure] == expected


def test_a_negative_count_is_no_count_in_every_measure_that_reads_it():
    """A study may let its copy of a count question go below 0; no measure then goes below 0
    (its declared minimum: the datasets keep its missing codes in its own cells), and the
    measures built on one another agree."""
    days = {f"days_{stem}": -5 for stem in ("opioids", "cocaine", "meth", "cannabis")}
    values = derived.compute("followup", {**BASE, **days, "days_alcohol": -5, "days_other": -5})
    assert (values["days_used"], values["any_use"]) == (None, None)
    meetings = {**BASE, "mtg_na_inperson": -3, "mtg_na_online": 0, "mtg_na_online24": 0}
    values = derived.compute("followup", {**meetings, "mtg_smart_online": 1})
    assert values["meetings_total"] == 1  # the -3 counts as a blank: 0
    assert values["meetings_online_share"] == 1.0
    assert (values["involvement_index"], values["high_involvement"]) == (3, 0)
    values = derived.compute("followup", {**BASE, "craving": -97, "longest_use_run_days": -1})
    assert (values["craving"], values["lapse_relapse"]) == (None, None)
    for measure in measures.MEASURES:
        assert measure.kind not in ("integer", "decimal") or measure.minimum == 0


def test_derived_exposure_and_outcome_reproduce_the_synthetic_truth():
    cohort = generate_cohort(participants=1500, seed=21, as_of=date(2026, 11, 24))
    truth = cohort.truth
    for waves, measure, planted in (
        (("m1", "m3"), measures.high_involvement, "treated"),
        (("m12",), measures.any_use, "y12"),
    ):
        keys = [key for key in cohort.answers if key[1] in waves]
        frame = derived.answers_frame([cohort.answers[key] for key in keys])
        found = measure(frame)
        expected = [truth[planted][index] for index, _ in keys]
        assert found.tolist() == expected
        assert len(keys) > 1000

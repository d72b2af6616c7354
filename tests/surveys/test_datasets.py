"""The dataset builder (issue 7, point 1): long and wide shapes, the diary, CSV and codebook."""

import uuid
from datetime import UTC, date, datetime

import pandas as pd
import pyreadstat
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils.crypto import salted_hmac
from pandas.testing import assert_frame_equal

from recovery.services import study_create_from_template
from surveys import derived
from surveys.datasets import (
    MISSING_CODES,
    NOT_ANSWERED,
    NOT_CALCULATED,
    NOT_SHOWN,
    NOT_YET_DUE,
    WAVE_MISSED,
    codebook,
    csv_rows,
    dataset_diary,
    dataset_long,
    dataset_wide,
    pseudonymous_id,
)
from surveys.datasets.formats import write_dataset
from surveys.datasets.pid import date_offset
from surveys.datasets.tables import with_ids
from surveys.instruments import instrument_items_set, version_items_as_dicts
from surveys.models import Assignment, DiaryEntry, Instrument, Participant, Response
from surveys.services import recurring_assignments_extend
from surveys.submission import response_submit

ENROLLED = date(2026, 1, 15)
ENROLMENT = datetime(2026, 1, 15, 14, tzinfo=UTC)
BASELINE_DAY = datetime(2026, 1, 17, 15, tzinfo=UTC)  # 2 days after enrolment, New York
MONTH1_DAY = datetime(2026, 2, 16, 15, tzinfo=UTC)  # month 1 window opened 7 Feb (New York)

CONTACTS = [
    {
        "first_name": "Marisol",
        "last_name": "Quintanilla",
        "email": "marisol.q@example.org",
        "phone": "+1 212 555 0142",
    },
    {
        "first_name": "Bartholomew",
        "last_name": "Featherstone",
        "email": "bart.feather@example.net",
        "phone": "+44 20 7946 0958",
    },
]


def _extra_baseline_items() -> list[dict]:
    """An identifier, a free text, an optional question and a calculated field."""
    return [
        {
            "variable": "birth_year",
            "kind": "integer",
            "label": {"en": "Year of birth"},
            "identifier": True,
            "min_value": "1900",
            "max_value": "2010",
        },
        {"variable": "story", "kind": "notes", "label": {"en": "Anything else to tell us?"}},
        {
            "variable": "household",
            "kind": "integer",
            "label": {"en": "How many people live with you?"},
            "min_value": "0",
            "max_value": "20",
        },
        {
            "variable": "age_decade",
            "kind": "calc",
            "label": {"en": "Age in decades"},
            "calculation": "round([age] / 10)",
        },
        {
            "variable": "days_per_housemate",
            "kind": "calc",
            "label": {"en": "Days of use per person at home"},
            "calculation": "[baseline_days_used] / [household]",
        },
    ]


BASELINE_ANSWERS = {
    "age": 34,
    "gender": "2",
    "race_ethnicity": "4",
    "primary_substance": "1",
    "treatment_setting": "2",
    "justice_involved": 0,
    "mat_status": "1",
    "prior_mhg": 1,
    "baseline_days_used": 12,
    "readiness": 7,
    "craving": 6,
    "birth_year": 1991,
    "story": "I stay with my aunt at 12 Elm Street",
}


WEEKLY_ANSWERS = {
    "craving": 3,
    "checkin_mtg_inperson": 1,
    "checkin_mtg_online": 3,
    "checkin_mtg_online24": 0,
    "checkin_mtg_hybrid": 0,
    "any_use_since_last": 0,
}


def followup_answers(**changes) -> dict:
    """A complete month-1 survey: NA (in person and online) and SMART Recovery attended."""
    answers = {
        "attended_any": 1,
        "fellowships": ["1", "6"],
        **{
            f"mtg_{stem}_{fmt}": 0
            for stem in ("na", "smart")
            for fmt in ("inperson", "online", "online24", "hybrid")
        },
        "home_group": 1,
        "has_sponsor": 1,
        "sponsor_contact": "2",
        "is_sponsor": 0,
        "service_work": 1,
        "steps_completed": 3,
        "speaks_at_meetings": 1,
        "member_contact_outside": 0,
        "reads_literature": 1,
        "mat_status": "1",
        "mat_changed": 0,
        "mat_disclosed": 1,
        "mat_stigma": 0,
        "craving": 4,
        **{
            f"days_{stem}": 0
            for stem in ("opioids", "cocaine", "meth", "cannabis", "alcohol", "other")
        },
        "any_use_since_last": 0,
        "overdose": 0,
        "cohesion": 80,
        "qol_overall": 7,
        "qol_health": 6,
    }
    answers.update({"mtg_na_inperson": 5, "mtg_na_online": 2, "mtg_smart_online": 1})
    answers["days_alcohol"] = 2
    answers.update(changes)
    return answers


@pytest.fixture
def design(study):
    """The template study, with the baseline extended (before anyone answered it)."""
    baseline = Instrument.objects.get(study=study, slug="baseline")
    items = version_items_as_dicts(baseline.current_version) + _extra_baseline_items()
    for position, item in enumerate(items, start=1):
        item["position"] = position
    instrument_items_set(instrument=baseline, items=items)
    return study


def submit(participant, wave, instrument_slug, answers, now):
    assignment = participant.assignments.get(wave__slug=wave, occurrence=0)
    instrument = Instrument.objects.get(study=participant.study, slug=instrument_slug)
    return response_submit(
        assignment=assignment,
        instrument=instrument,
        answers=answers,
        client_id=uuid.uuid4(),
        now=now,
    ).response


@pytest.fixture
def cohort(design, site_a, site_b, enrol):
    """Two participants. Ana: baseline (household left blank) and month 1 done. Ben (other site):
    baseline done, month 1 missed. Everything later is not yet due for both."""
    ana = enrol(site=site_a, enrolled_on=ENROLLED, now=ENROLMENT, contact=CONTACTS[0])
    ben = enrol(site=site_b, enrolled_on=ENROLLED, now=ENROLMENT, contact=CONTACTS[1])
    submit(ana, "baseline", "baseline", BASELINE_ANSWERS, BASELINE_DAY)
    submit(ana, "m1", "followup", followup_answers(), MONTH1_DAY)
    submit(
        ben, "baseline", "baseline", {**BASELINE_ANSWERS, "age": 51, "household": 2}, BASELINE_DAY
    )
    ben.assignments.filter(wave__slug="m1").update(status=Assignment.Status.MISSED)
    return ana, ben


def row(frame, participant, wave, occurrence=0):
    pid = pseudonymous_id(study_id=participant.study_id, participant_id=participant.pk)
    found = frame[
        (frame["pid"] == pid) & (frame["wave"] == wave) & (frame["occurrence"] == occurrence)
    ]
    assert len(found) == 1
    return found.iloc[0]


# --- the long frame --------------------------------------------------------------------------


def test_long_has_one_row_per_assignment_with_the_columns_in_order(cohort):
    frame = dataset_long(study=cohort[0].study)
    assert len(frame) == 2 * 5  # baseline + 4 follow-ups each; the weekly check-in is off
    assert list(frame.columns[:8]) == [
        "pid",
        "site",
        "wave",
        "occurrence",
        "status",
        "days_since_enrolment",
        "days_since_window_opened",
        "instrument_version",
    ]
    names = list(frame.columns)
    assert names.index("age") < names.index("attended_any") < names.index("meetings_total")
    assert "checkin_mtg_online" not in names  # a switched-off wave nobody has


def test_long_values_of_a_completed_baseline_and_follow_up(cohort):
    ana, _ = cohort
    frame = dataset_long(study=ana.study)
    baseline = row(frame, ana, "baseline")
    assert baseline["site"] == "NYC"
    assert baseline["status"] == "completed"
    assert baseline["days_since_enrolment"] == 0
    assert baseline["days_since_window_opened"] == 2
    assert baseline["instrument_version"] == 1
    assert baseline["age"] == 34
    assert baseline["gender"] == 2  # whole-number choice codes are numbers
    assert baseline["mat_status"] == 1
    assert baseline["craving"] == 6
    assert baseline["age_decade"] == 3.0  # a calculated item is included
    month1 = row(frame, ana, "m1")
    assert month1["status"] == "completed"
    assert month1["days_since_enrolment"] == 23  # window opens 7 days before day 30
    assert month1["days_since_window_opened"] == 9
    assert month1["mtg_na_inperson"] == 5
    assert month1["sponsor_contact"] == 2
    assert month1["craving"] == 4
    assert pd.isna(month1["age"])  # not a follow-up question: empty, not a code
    assert pd.isna(baseline["attended_any"])


def test_the_four_missing_codes_appear_where_they_should(cohort):
    ana, ben = cohort
    frame = dataset_long(study=ana.study)
    # a future wave: not yet due, in every item and derived column of its instrument
    m3 = row(frame, ana, "m3")
    assert m3["status"] == "not_yet_due"
    assert m3["attended_any"] == NOT_YET_DUE
    assert m3["fellowships___1"] == NOT_YET_DUE
    assert m3["involvement_index"] == NOT_YET_DUE
    assert m3["mat_mhg_class"] == str(NOT_YET_DUE)
    assert pd.isna(m3["instrument_version"])
    # a missed wave
    missed = row(frame, ben, "m1")
    assert missed["status"] == "missed"
    assert missed["craving"] == WAVE_MISSED
    assert missed["mtg_na_inperson"] == WAVE_MISSED
    assert pd.isna(missed["days_since_window_opened"])
    # hidden by branching: CA not chosen, medication not changed
    month1 = row(frame, ana, "m1")
    assert month1["mtg_ca_inperson"] == NOT_SHOWN
    assert month1["mat_stopped_pressure"] == NOT_SHOWN
    assert month1["longest_use_run_days"] == NOT_SHOWN
    # shown, optional, left blank; answered by the other participant
    assert row(frame, ana, "baseline")["household"] == NOT_ANSWERED
    assert row(frame, ben, "baseline")["household"] == 2
    assert set(MISSING_CODES) >= {NOT_YET_DUE, WAVE_MISSED, NOT_SHOWN, NOT_ANSWERED}
    assert len(set(MISSING_CODES)) == len(MISSING_CODES)


def test_a_calculation_that_gave_no_number_is_coded_not_calculated(cohort, enrol):
    """A shown calculated item left blank (an answer its formula needs is missing, or a
    division by zero) is -93, not -96 "shown but not answered": nobody was asked it. Its
    codes stay in its own cells: 0 to 30 days by 0 to 20 people (0 people: blank) cannot be
    a code (tests/surveys/test_dataset_missing_apart.py has the ones that could)."""
    ana, ben = cohort
    frame = dataset_long(study=ana.study)
    assert row(frame, ana, "baseline")["days_per_housemate"] == NOT_CALCULATED  # no household
    assert row(frame, ben, "baseline")["days_per_housemate"] == 6.0  # 12 days / 2 people
    carl = enrol(site=ana.site, enrolled_on=ENROLLED, now=ENROLMENT)
    submit(carl, "baseline", "baseline", {**BASELINE_ANSWERS, "household": 0}, BASELINE_DAY)
    frame = dataset_long(study=ana.study)
    assert row(frame, carl, "baseline")["days_per_housemate"] == NOT_CALCULATED
    assert row(frame, carl, "baseline")["household"] == 0  # the answer itself stays
    assert pd.isna(row(frame, ben, "m1")["days_per_housemate"])  # not in that questionnaire
    assert MISSING_CODES[NOT_CALCULATED].startswith("Could not be calculated")
    assert "days_per_housemate_missing" not in frame.columns


def test_a_runaway_value_stored_before_the_limit_is_coded_not_calculated(cohort, tmp_path):
    """Values stored before calculated items had a size limit (1e15): near 1e308 they made the
    Stata file fail. The export codes them -93 like a blank calculation; answers typed by the
    participant are left as they are."""
    ana, ben = cohort
    stored = Response.objects.get(assignment__participant=ben, assignment__wave__slug="baseline")
    stored.answers = {**stored.answers, "days_per_housemate": 1e308, "age_decade": -2e15}
    stored.save(update_fields=["answers"])
    frame = dataset_long(study=ana.study)
    baseline = row(frame, ben, "baseline")
    assert baseline["days_per_housemate"] == NOT_CALCULATED
    assert baseline["age_decade"] == NOT_CALCULATED
    assert baseline["age"] == 51
    for fmt in ("dta", "sav"):  # the file is written (1e308 made Stata's fail) and reads back
        path = tmp_path / f"long.{fmt}"
        write_dataset(frame, path, fmt)
        if fmt == "dta":
            read, _ = pyreadstat.read_dta(str(path))
        else:
            read, _ = pyreadstat.read_sav(str(path), user_missing=True)
        assert (read["days_per_housemate"] == NOT_CALCULATED).sum() == 2  # Ana and Ben
    stored.answers = {**stored.answers, "days_per_housemate": 999_999_999_999_999.0}
    stored.save(update_fields=["answers"])
    assert row(dataset_long(study=ana.study), ben, "baseline")["days_per_housemate"] == (
        999_999_999_999_999.0
    )


def test_multiple_choice_is_one_zero_or_one_column_per_choice(cohort):
    ana, _ = cohort
    frame = dataset_long(study=ana.study)
    month1 = row(frame, ana, "m1")
    assert "fellowships" not in frame.columns
    assert [c for c in frame.columns if c.startswith("fellowships___")] == [
        f"fellowships___{code}" for code in range(1, 13)
    ]
    assert month1["fellowships___1"] == 1
    assert month1["fellowships___6"] == 1
    assert month1["fellowships___2"] == 0
    assert month1["fellowships___12"] == 0


def test_derived_measures_equal_the_registry_for_the_same_answers(cohort):
    ana, _ = cohort
    frame = dataset_long(study=ana.study)
    stored = Response.objects.get(assignment__participant=ana, assignment__wave__slug="m1")
    expected = derived.compute("followup", stored.answers)
    assert expected["meetings_total"] == 8  # the registry is filled (recovery's measures)
    month1 = row(frame, ana, "m1")
    for name, value in expected.items():
        column = f"{name}_derived" if name == "craving" else name  # craving is also an item
        if value is None:
            assert pd.isna(month1[column]), name
        else:
            assert month1[column] == value, name
    assert month1["mat_mhg_class"] == "both"
    assert month1["lapse_relapse"] == "none"


def test_identifiers_and_free_text_are_left_out_by_default(cohort):
    frame = dataset_long(study=cohort[0].study)
    assert "birth_year" not in frame.columns
    assert "story" not in frame.columns
    with_text = dataset_long(study=cohort[0].study, include_free_text=True)
    assert "story" in with_text.columns
    assert "birth_year" not in with_text.columns
    assert "birth_year" in dataset_long(study=cohort[0].study, include_identifiers=True).columns


def test_no_contact_detail_or_study_id_in_any_byte_of_the_csv(cohort):
    ana, ben = cohort
    study = ana.study
    DiaryEntry.objects.create(participant=ana, group="1", format="inperson", occurred_on=ENROLLED)
    long = dataset_long(study=study, covariates=["age", "gender"])
    frames = [long, dataset_wide(long), dataset_diary(study=study), codebook(study, long)]
    data = b"".join(
        "".join(csv_rows(frame, labels=labels)).encode()
        for frame in frames
        for labels in (False, True)
    )
    secrets = [value for contact in CONTACTS for value in contact.values()]
    secrets += [ana.code, ben.code, "Elm Street", "1991"]
    for secret in secrets:
        assert secret.encode() not in data, secret
    for participant in (ana, ben):
        # the pid is not the primary key either (a pid column never holds "<pk>")
        assert str(participant.pk) not in long["pid"].tolist()
    # the check can fail: free text, asked for, carries what it carries
    asked = "".join(csv_rows(dataset_long(study=study, include_free_text=True))).encode()
    assert b"Elm Street" in asked


def test_pid_is_stable_within_a_study_and_differs_across_studies(cohort):
    ana, _ = cohort
    first = dataset_long(study=ana.study)["pid"].tolist()
    again = dataset_long(study=ana.study)["pid"].tolist()
    assert first == again
    other = study_create_from_template(
        slug="other", name="Other study", sites=[("SFO", "San Francisco", "America/Los_Angeles")]
    )
    mine = pseudonymous_id(study_id=ana.study_id, participant_id=ana.pk)
    assert mine in first
    assert pseudonymous_id(study_id=other.pk, participant_id=ana.pk) != mine
    assert ana.code not in mine and mine.startswith("P") and len(mine) == 17


def test_pid_and_date_shift_are_the_documented_keyed_hashes(settings):
    """The pid and the date shift are HMAC-SHA256 under a key derived from SECRET_KEY and the
    study (``salted_hmac``): every export ever made has these values, so a faster way of
    computing them must give the same ones, and a new secret key new ones."""
    pid = pseudonymous_id(study_id=7, participant_id=1234)
    digest = salted_hmac("surveys.datasets.pid:7", "1234", algorithm="sha256").hexdigest()
    assert pid == "P" + digest[:16]
    shift = salted_hmac("surveys.datasets.pid:shift:7", "1234", algorithm="sha256").hexdigest()
    assert date_offset(study_id=7, participant_id=1234) == int(shift[:12], 16) % 365
    settings.SECRET_KEY = "another-secret-key-" + "x" * 40
    assert pseudonymous_id(study_id=7, participant_id=1234) != pid
    assert pseudonymous_id(study_id=7, participant_id=1234) == (
        "P" + salted_hmac("surveys.datasets.pid:7", "1234", algorithm="sha256").hexdigest()[:16]
    )


def test_with_ids_picks_the_same_rows_as_an_in_list(cohort):
    ana, ben = cohort
    everyone = Participant.objects.order_by("pk")
    for ids in ([ana.pk], [ana.pk, ben.pk], [ben.pk, 10**12], []):
        picked = list(with_ids(everyone, "pk", ids).values_list("pk", flat=True))
        assert picked == list(everyone.filter(pk__in=ids).values_list("pk", flat=True))
    assert list(with_ids(everyone, "pk", [ben.pk])) == [ben]
    # through a join, as the builder asks for a batch's answers
    answers = Response.objects.order_by("pk")
    for ids in ([ana.pk], [ana.pk, ben.pk], [ben.pk, 10**12]):
        picked = with_ids(answers, "assignment__participant_id", ids)
        expected = answers.filter(assignment__participant_id__in=ids)
        assert list(picked) == list(expected) and picked.exists()


def test_covariates_repeat_the_baseline_answer_on_every_row(cohort):
    ana, ben = cohort
    frame = dataset_long(study=ana.study, waves=["m1", "m3"], covariates=["age", "race_ethnicity"])
    assert set(frame["wave"]) == {"m1", "m3"}  # the baseline row is read, not returned
    assert list(frame.columns[-2:]) == ["age_bl", "race_ethnicity_bl"]
    assert (frame.loc[frame["pid"] == row(frame, ana, "m1")["pid"], "age_bl"] == 34).all()
    assert (frame.loc[frame["pid"] == row(frame, ben, "m1")["pid"], "age_bl"] == 51).all()
    with pytest.raises(ValueError, match="unknown covariate"):
        dataset_long(study=ana.study, covariates=["no_such_thing"])


def test_filters_by_scope_wave_and_instrument(cohort):
    ana, _ = cohort
    scoped = dataset_long(
        study=ana.study, participants=Participant.objects.filter(site__code="NYC")
    )
    assert set(scoped["site"]) == {"NYC"}
    baseline_only = dataset_long(study=ana.study, instruments=["baseline"])
    assert set(baseline_only["wave"]) == {"baseline"}
    assert "attended_any" not in baseline_only.columns
    assert "age" in baseline_only.columns


# --- the wide shape ---------------------------------------------------------------------------


def test_pivoting_the_long_export_gives_the_wide_one(cohort):
    long = dataset_long(study=cohort[0].study, covariates=["age"])
    wide = dataset_wide(long)
    assert len(wide) == 2
    assert list(wide.columns[:3]) == ["pid", "site", "age_bl"]
    values = [c for c in long.columns if c not in ("pid", "site", "wave", "occurrence", "age_bl")]
    pivot = long.pivot(index="pid", columns="wave", values=values)
    pivot.columns = [f"{variable}_{wave}" for variable, wave in pivot.columns]
    people = long.drop_duplicates("pid").set_index("pid")[["site", "age_bl"]]
    expected = people.join(pivot).reset_index()
    # Nothing is lost: a pivoted column the wide frame has not is empty throughout (a
    # follow-up question at baseline) ...
    left_out = [c for c in expected.columns if c not in wide.columns]
    assert left_out and expected[left_out].isna().all().all()
    # ... and the rest is equal, value for value and type for type.
    # (pivot gives its text columns NaN as their blank: cast back to the long frame's types)
    expected = expected[list(wide.columns)].astype(wide.dtypes.to_dict())
    assert_frame_equal(wide, expected)
    assert wide.loc[0, "status_m1"] in ("completed", "missed")
    assert "attended_any_baseline" not in wide.columns
    assert "status_baseline" in wide.columns and "craving_baseline" in wide.columns


def test_a_wide_name_made_twice_is_numbered_never_lost(cohort, tmp_path):
    """Found by review: waves "m-1" and "m_1" both gave ``status_m_1`` and the second
    overwrote the first without a word; a wave named "bl" gave a second ``age_bl`` beside the
    covariate, and no statistics file could be written. The later name is numbered."""
    from surveys.models import Wave

    study = cohort[0].study
    Wave.objects.filter(study=study, slug="baseline").update(slug="bl")
    Wave.objects.filter(study=study, slug="m1").update(slug="m-1")
    Wave.objects.filter(study=study, slug="m3").update(slug="m_1")
    long = dataset_long(study=study, covariates=["age"])
    wide = dataset_wide(long)
    assert wide.columns.is_unique
    assert [c for c in wide.columns if c.startswith("age_bl")] == ["age_bl", "age_bl__2"]
    by_pid = long.set_index(["pid", "wave"])["status"]
    for pid, first, second in wide[["pid", "status_m_1", "status_m_1__2"]].itertuples(index=False):
        assert (first, second) == (by_pid[pid, "m-1"], by_pid[pid, "m_1"])
    for fmt in ("sav", "dta", "parquet", "xlsx"):
        write_dataset(wide, tmp_path / f"wide.{fmt}", fmt)


def test_wave_slugs_differing_only_by_hyphen_or_case_are_refused(study):
    from django.core.exceptions import ValidationError

    from surveys.models import Wave

    def again(slug):
        return Wave(study=study, slug=slug, name="Again", position=9, offset_days=40)

    with pytest.raises(ValidationError, match="Too like the wave “m1”"):
        again("M1").full_clean()
    Wave.objects.filter(study=study, slug="m1").update(slug="m-1")
    with pytest.raises(ValidationError, match="Too like the wave “m-1”"):
        again("m_1").full_clean()
    Wave(study=study, slug="m2", name="Two months", position=9, offset_days=61).full_clean()


def test_wide_names_recurring_waves_by_occurrence(design, site_a, enrol):
    design.waves.filter(slug="weekly").update(is_active=True)
    participant = enrol(site=site_a, enrolled_on=ENROLLED, now=ENROLMENT)
    recurring_assignments_extend(now=ENROLMENT)
    submit(participant, "weekly", "checkin", WEEKLY_ANSWERS, datetime(2026, 1, 23, 15, tzinfo=UTC))
    long = dataset_long(study=design, waves=["weekly"])
    assert sorted(long["occurrence"].tolist())[:2] == [0, 1]
    wide = dataset_wide(long)
    assert len(wide) == 1
    assert wide.loc[0, "status_weekly_0"] == "completed"
    assert wide.loc[0, "checkin_mtg_online_weekly_0"] == 3
    assert wide.loc[0, "status_weekly_1"] == "not_yet_due"
    assert wide.loc[0, "checkin_mtg_online_weekly_1"] == NOT_YET_DUE


# --- the diary, the CSV writer and the codebook --------------------------------------------


def test_diary_is_the_selector_table_with_pids(cohort):
    ana, ben = cohort
    DiaryEntry.objects.create(
        participant=ana, group="1", format="inperson", occurred_on=date(2026, 1, 20)
    )
    DiaryEntry.objects.create(
        participant=ben, group="6", format="online", occurred_on=date(2026, 1, 25)
    )
    frame = dataset_diary(study=ana.study)
    assert list(frame.columns) == [
        "pid",
        "site",
        "group",
        "group_label",
        "format",
        "format_label",
        "occurred_day",
        "logged_day",
    ]
    mine = frame[frame["pid"] == pseudonymous_id(study_id=ana.study_id, participant_id=ana.pk)]
    assert mine.iloc[0]["occurred_day"] == 5
    assert mine.iloc[0]["group_label"] == "Narcotics Anonymous"
    assert (
        len(dataset_diary(study=ana.study, participants=Participant.objects.filter(pk=ben.pk))) == 1
    )


def test_csv_writes_codes_or_labels(cohort):
    ana, ben = cohort
    frame = dataset_long(study=ana.study)
    codes_text = "".join(csv_rows(frame, chunk_rows=3))
    read = pd.read_csv(pd.io.common.StringIO(codes_text))
    assert len(read) == len(frame) and list(read.columns) == list(frame.columns)
    pid = row(frame, ben, "m1")["pid"]
    missed = read[(read["pid"] == pid) & (read["wave"] == "m1")].iloc[0]
    assert missed["craving"] == -99
    assert ",-99," in codes_text and ",-99.0," not in codes_text
    labelled = pd.read_csv(pd.io.common.StringIO("".join(csv_rows(frame, labels=True))))
    missed = labelled[(labelled["pid"] == pid) & (labelled["wave"] == "m1")].iloc[0]
    assert missed["craving"] == MISSING_CODES[WAVE_MISSED]
    ana_m1 = labelled[
        (labelled["pid"] == row(frame, ana, "m1")["pid"]) & (labelled["wave"] == "m1")
    ].iloc[0]
    assert ana_m1["sponsor_contact"] == "A few times a week"
    assert ana_m1["home_group"] == "Yes"
    assert ana_m1["status"].startswith("Completed")


def test_codebook_describes_every_column(cohort):
    frame = dataset_long(study=cohort[0].study)
    book = codebook(cohort[0].study, frame)
    assert book["name"].tolist() == list(frame.columns)
    entry = book.set_index("name")
    assert entry.loc["gender", "values"].startswith("1 = Woman")
    assert entry.loc["gender", "source"] == "baseline v1"
    assert entry.loc["craving", "source"] == "baseline v1; followup v1"
    assert "mtg_" in entry.loc["meetings_total", "formula"]
    assert entry.loc["meetings_total", "source"] == "derived from followup"
    assert entry.loc["mtg_na_inperson", "branching"] == "[fellowships(1)] = '1'"
    assert "(-97) Not shown" in entry.loc["attended_any", "missing_codes"]
    # read as written in a spreadsheet: no formula guard's quote in front
    assert entry.loc["attended_any", "missing_codes"].startswith("(-99) Wave missed")
    assert entry.loc["pid", "missing_codes"] == ""


# --- queries --------------------------------------------------------------------------------


def test_query_count_does_not_grow_with_participants(design, site_a, site_b, enrol):
    def add(n):
        for i in range(n):
            participant = enrol(
                site=site_a if i % 2 else site_b, enrolled_on=ENROLLED, now=ENROLMENT
            )
            submit(participant, "baseline", "baseline", BASELINE_ANSWERS, BASELINE_DAY)
            submit(participant, "m1", "followup", followup_answers(), MONTH1_DAY)
            DiaryEntry.objects.create(
                participant=participant, group="1", format="online", occurred_on=ENROLLED
            )

    def count():
        with CaptureQueriesContext(connection) as queries:
            long = dataset_long(study=design, covariates=["age"])
            dataset_wide(long)
            dataset_diary(study=design)
        return len(queries), len(long)

    add(2)
    small, rows_small = count()
    add(8)
    large, rows_large = count()
    assert rows_large == 5 * rows_small
    assert small == large


def test_a_study_without_participants_gives_empty_frames_with_their_columns(design):
    long = dataset_long(study=design)
    assert len(long) == 0 and "attended_any" in long.columns
    assert list(dataset_wide(long).columns) == ["pid", "site"]
    assert len(dataset_diary(study=design)) == 0
    assert "".join(csv_rows(long)).startswith("pid,site,wave,")

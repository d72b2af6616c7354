from datetime import date

import numpy as np
import pandas as pd
import pytest

from recovery.battery import FELLOWSHIPS, FORMATS, SUBSTANCES
from recovery.services import demo_study_seed, synthetic_study_delete
from recovery.synthetic import generate_cohort
from surveys import logic
from surveys.models import Assignment, Item, Response
from surveys.submission import days_since_last_survey
from surveys.validation import SINCE_LAST_SURVEY

AS_OF = date(2026, 11, 24)


def test_same_seed_gives_the_same_cohort_and_another_seed_does_not():
    first = generate_cohort(participants=200, seed=7, as_of=AS_OF)
    again = generate_cohort(participants=200, seed=7, as_of=AS_OF)
    other = generate_cohort(participants=200, seed=8, as_of=AS_OF)
    assert first.answers == again.answers
    assert first.participants == again.participants
    assert first.answers != other.answers


@pytest.mark.parametrize("effect", [-0.15, -0.25, 0.0, 0.1])
def test_the_true_effect_is_the_one_asked_for(effect):
    cohort = generate_cohort(participants=5000, seed=3, effect=effect, as_of=AS_OF)
    truth = cohort.truth
    assert cohort.true_effect == pytest.approx(effect, abs=1e-12)
    # The same among the highly involved (the ATT the matching analysis estimates).
    treated = truth["treated"] == 1
    assert 0.3 < treated.mean() < 0.6
    assert np.mean(truth["p1"][treated] - truth["p0"][treated]) == pytest.approx(effect, abs=1e-12)
    # Realised potential outcomes differ by the effect, up to sampling noise.
    assert np.mean(truth["y1"] - truth["y0"]) == pytest.approx(effect, abs=0.02)


def test_invalid_parameters_are_refused():
    with pytest.raises(ValueError, match="participants"):
        generate_cohort(participants=0, as_of=AS_OF)
    with pytest.raises(ValueError, match="between -1 and 1"):
        generate_cohort(participants=10, effect=1.5, as_of=AS_OF)


def _frame_from_database(study) -> pd.DataFrame:
    """One row per participant, read back from the stored responses."""
    rows = Response.objects.filter(
        assignment__participant__study=study, status=Response.Status.SUBMITTED
    ).values_list("assignment__participant_id", "assignment__wave__slug", "answers")
    per_person: dict[int, dict] = {}
    for participant_id, wave, answers in rows:
        per_person.setdefault(participant_id, {})[wave] = answers
    records = []
    for participant_id, waves in per_person.items():
        base = waves["baseline"]
        m3, m12 = waves.get("m3"), waves.get("m12")
        record = {
            "participant": participant_id,
            "severity": base["baseline_days_used"],
            "readiness": base["readiness"],
            "justice": base["justice_involved"],
            "high_3m": np.nan,
            "use_12m": np.nan,
        }
        if m3 is not None:
            meetings = sum(v for k, v in m3.items() if k.startswith("mtg_"))
            record["high_3m"] = int(
                m3["home_group"] == 1
                and m3["has_sponsor"] == 1
                and m3["service_work"] == 1
                and meetings >= 4
            )
        if m12 is not None:
            record["use_12m"] = int(any(m12[f"days_{stem}"] > 0 for _, stem, _ in SUBSTANCES))
        records.append(record)
    return pd.DataFrame.from_records(records)


@pytest.fixture(scope="module")
def seeded(django_db_setup, django_db_blocker):
    """A 4,000-person cohort with a planted effect of -0.15, written to the database once."""
    with django_db_blocker.unblock():
        study, counts = demo_study_seed(
            slug="effect-check", participants=4000, seed=11, effect=-0.15
        )
        yield study, counts
        synthetic_study_delete(study=study)


@pytest.mark.slow
def test_stored_cohort_shows_a_naive_estimate_biased_towards_benefit_and_adjustment_recovers_it(
    seeded, db
):
    study, _ = seeded
    frame = _frame_from_database(study).dropna(subset=["high_3m", "use_12m"])
    assert len(frame) > 1500
    treated = frame["high_3m"] == 1
    naive = frame.loc[treated, "use_12m"].mean() - frame.loc[~treated, "use_12m"].mean()
    # Highly involved people were less severe and more ready: the naive comparison makes
    # involvement look better than it is.
    assert naive < -0.15 - 0.05
    design = np.column_stack(
        [np.ones(len(frame)), frame["high_3m"], frame["severity"], frame["readiness"]]
    )
    adjusted = np.linalg.lstsq(design, frame["use_12m"].to_numpy(float), rcond=None)[0][1]
    assert adjusted == pytest.approx(-0.15, abs=0.05)
    assert study.synthetic_params["true_effect"] == pytest.approx(-0.15)


@pytest.mark.slow
def test_follow_up_falls_to_about_70_percent_at_12_months_and_is_worse_when_justice_involved(
    seeded, db
):
    study, _ = seeded
    due = Assignment.objects.filter(participant__study=study, wave__slug="m12").exclude(
        status__in=[Assignment.Status.SCHEDULED, Assignment.Status.OPEN]
    )
    statuses = pd.DataFrame.from_records(due.values("status", "participant_id"))
    completed = statuses["status"] == Assignment.Status.COMPLETED
    assert completed.mean() == pytest.approx(0.70, abs=0.03)
    frame = _frame_from_database(study).set_index("participant")
    justice = frame.loc[statuses["participant_id"], "justice"].to_numpy() == 1
    assert completed[~justice].mean() - completed[justice].mean() > 0.07
    month1 = Assignment.objects.filter(participant__study=study, wave__slug="m1").exclude(
        status__in=[Assignment.Status.SCHEDULED, Assignment.Status.OPEN]
    )
    m1_rate = month1.filter(status=Assignment.Status.COMPLETED).count() / month1.count()
    assert m1_rate > completed.mean() + 0.1


@pytest.mark.slow
def test_every_stored_answer_fits_its_instrument_version_and_branching(seeded, db):
    study, counts = seeded
    items_by_version: dict[int, list] = {}
    for item in Item.objects.filter(version__instrument__study=study).order_by("position"):
        items_by_version.setdefault(item.version_id, []).append(item)
    responses = Response.objects.filter(assignment__participant__study=study)
    assert responses.count() == counts["responses"]
    limited = 0
    for response in responses.select_related("assignment__participant"):
        version_id, answers = response.instrument_version_id, response.answers
        items = {item.variable: item for item in items_by_version[version_id]}
        assert set(answers) <= set(items), set(answers) - set(items)
        for item in items.values():
            shown = logic.shows(item.branching, answers)
            if not shown:
                assert item.variable not in answers, f"{item.variable} answered but hidden"
                continue
            if item.required:
                assert item.variable in answers, f"{item.variable} shown, required, missing"
            if item.variable not in answers:
                continue
            value = answers[item.variable]
            codes = {choice["code"] for choice in item.choices}
            if item.kind == "single":
                assert value in codes
            elif item.kind == "multiple":
                assert set(value) <= codes and value
            elif item.kind == "yesno":
                assert value in (0, 1)
            elif item.max_value == SINCE_LAST_SURVEY:  # the longest run of use
                days = days_since_last_survey(
                    response.assignment, response.instrument_id, response.submitted_at
                )
                assert float(item.min_value) <= value <= days, item.variable
                limited += 1
            else:
                assert float(item.min_value) <= value <= float(item.max_value), item.variable
    assert limited > 100  # the limited answers were there to check


@pytest.mark.slow
def test_use_and_medication_answers_are_consistent_with_each_other(seeded, db):
    study, _ = seeded
    rows = (
        Response.objects.filter(assignment__participant__study=study)
        .order_by("assignment__participant_id", "assignment__due_at")
        .values_list("assignment__participant_id", "assignment__wave__slug", "answers")
    )
    last_mat: dict[int, str] = {}
    for participant_id, wave, answers in rows:
        if wave != "baseline":
            days = [answers[f"days_{stem}"] for _, stem, _ in SUBSTANCES]
            if answers["any_use_since_last"]:
                assert 1 <= answers["longest_use_run_days"] <= max(days)
            else:
                assert max(days) == 0 and "longest_use_run_days" not in answers
            changed = answers["mat_status"] != last_mat[participant_id]
            assert answers["mat_changed"] == int(changed)
        last_mat[participant_id] = answers["mat_status"]


@pytest.mark.slow
def test_assignment_statuses_agree_with_the_stored_responses(seeded, db):
    study, _ = seeded
    assignments = Assignment.objects.filter(participant__study=study)
    completed = assignments.filter(status=Assignment.Status.COMPLETED)
    assert completed.count() == Response.objects.filter(assignment__in=completed).count()
    assert not Response.objects.filter(
        assignment__in=assignments.exclude(status=Assignment.Status.COMPLETED)
    ).exists()
    assert not completed.filter(completed_at__isnull=True).exists()
    for assignment in completed.filter(participant__code__endswith="7")[:200]:
        response = assignment.responses.get()
        assert assignment.opens_at <= response.submitted_at < assignment.closes_at
    # Some recent enrolees still have waves ahead of them.
    assert assignments.filter(status=Assignment.Status.SCHEDULED).exists()


def test_meeting_counts_exist_only_for_the_groups_a_participant_chose():
    cohort = generate_cohort(participants=300, seed=5, as_of=AS_OF)
    stems = {code: stem for code, stem, _ in FELLOWSHIPS}
    for (_, wave), answers in cohort.answers.items():
        if wave == "baseline":
            continue
        chosen = {stems[code] for code in answers.get("fellowships", [])}
        shown = {key.split("_")[1] for key in answers if key.startswith("mtg_")}
        assert shown == chosen
        if answers["attended_any"]:
            total = sum(v for k, v in answers.items() if k.startswith("mtg_"))
            assert total > 0
            assert len([k for k in answers if k.startswith("mtg_")]) == len(chosen) * len(FORMATS)

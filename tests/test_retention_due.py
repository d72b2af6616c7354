"""Due and the completion rate are the same on the coordinators' retention dashboard
(surveys.retention, its admin page) and in the researchers' retention table (the Analyses'
descriptives, built from the dataset's status column): one definition, surveys.due.

QA found them apart: the dashboard counted open and in-progress surveys as due, the analysis
counted cancelled ones (its rate had them as not completed). Now both: due = completed or
missed; the rate = completed ÷ due.
"""

from datetime import timedelta

import pytest
from django.utils import timezone

from recovery.analyses import AnalysisSpec, analysis_run_start
from surveys.models import Assignment, Participant
from surveys.retention import retention_summary
from surveys.services import participant_status_change

WAVES = ("baseline", "m1", "m3", "m6", "m12")
STATUS = {
    "C": Assignment.Status.COMPLETED,
    "M": Assignment.Status.MISSED,
    "O": Assignment.Status.OPEN,
    "P": Assignment.Status.IN_PROGRESS,
    "S": Assignment.Status.SCHEDULED,
}
# C completed, M missed, O open, P in progress (the dataset's "open" too), S scheduled (the
# dataset's "not_yet_due"); X cancelled: the participant left the study, and the status change
# cancelled every survey not answered yet (planted S, then withdrawn or deceased).
#
#            baseline  1 month  3 months  6 months  12 months
COHORT = {
    "NYC-0001": ("CCCOS", None),
    "NYC-0002": ("CCMPS", None),
    "NYC-0003": ("CMCSS", None),
    "NYC-0004": ("CCSSS", Participant.Status.WITHDRAWN),  # m3, m6, m12 cancelled
    "LDN-0001": ("MCOSS", None),
    "LDN-0002": ("CSSSS", Participant.Status.DECEASED),  # m1 … m12 cancelled
}
# Worked out by hand from the table above; due = completed + missed, rate = completed ÷ due.
#   Baseline:  completed 5 (all but LDN-0001), missed 1      → due 6, rate 5/6
#   1 month:   completed 4, missed 1 (NYC-0003); LDN-0002 cancelled → due 5, rate 4/5
#   3 months:  completed 2 (NYC-0001, -0003), missed 1 (NYC-0002); LDN-0001 open,
#              NYC-0004 and LDN-0002 cancelled                 → due 3, rate 2/3
#   6 months:  NYC-0001 open, NYC-0002 in progress, two scheduled, two cancelled → due 0
#   12 months: four scheduled, two cancelled                   → due 0
# Before: the dashboard had 3 months due 4 (the open survey counted); the analysis had it due
# 5 and a rate of 2/5 (the two cancelled counted as not completed).
EXPECTED = {
    "baseline": (6, 5, 5 / 6),
    "m1": (5, 4, 4 / 5),
    "m3": (3, 2, 2 / 3),
    "m6": (0, 0, None),
    "m12": (0, 0, None),
}


@pytest.fixture
def cohort(study, enrol):
    sites = {site.code: site for site in study.sites.all()}
    for code, (statuses, left) in COHORT.items():
        participant = enrol(
            site=sites[code[:3]],
            code=code,
            enrolled_on=timezone.localdate() - timedelta(days=400),
        )
        for assignment in participant.assignments.select_related("wave"):
            letter = statuses[WAVES.index(assignment.wave.slug)]
            assignment.status = STATUS[letter]
            if letter == "C":
                assignment.completed_at = assignment.opens_at + timedelta(days=1)
            assignment.save(update_fields=["status", "completed_at"])
        if left:
            participant_status_change(participant=participant, status=left, reason="in the test")
    counted = Assignment.objects.filter(participant__study=study)
    assert counted.filter(status=Assignment.Status.CANCELLED).count() == 3 + 4
    return study


def _dashboard(study, user) -> dict:
    summary = retention_summary(user=user, study=study)
    slugs = dict(study.waves.values_list("name", "slug"))
    return {slugs[w.name]: (w.due, w.completed, w.rate) for w in summary.curve}


def _analysis(study, user) -> dict:
    run = analysis_run_start(
        user=user, study=study, spec=AnalysisSpec(analyses=("descriptives",)), background=False
    )
    assert run.status == "done", run.message
    (section,) = run.results["sections"]
    table = section["tables"]["retention"]
    rows = [dict(zip(table["columns"], row, strict=True)) for row in table["rows"]]
    slugs = dict(study.waves.values_list("name", "slug"))
    return {slugs.get(r["wave"], r["wave"]): (r["due"], r["completed"], r["rate"]) for r in rows}


def _same(got: dict) -> dict:
    return {
        wave: (due, completed, None if rate is None or rate != rate else pytest.approx(rate))
        for wave, (due, completed, rate) in got.items()
    }


def test_the_dashboard_and_the_analysis_count_the_same_due_and_rate(cohort, researcher):
    expected = _same(EXPECTED)
    assert _same(_dashboard(cohort, researcher)) == expected
    assert _same(_analysis(cohort, researcher)) == expected


def test_the_dashboard_page_shows_them_and_says_how_they_are_counted(client, cohort, researcher):
    client.force_login(researcher)
    html = client.get(f"/admin/surveys/study/{cohort.pk}/retention/").text
    # 3 months: due 3, completed 2, missed 1, rate 2 of 3; the open survey is apart.
    assert "<td>3</td><td>2</td><td>1</td><td>67% (2 of 3)</td><td>1</td>" in html
    # All waves: due 6 + 5 + 3, completed 5 + 4 + 2, missed 1 + 1 + 1; in window 1 + 2.
    assert "<td>14</td><td>11</td><td>3</td><td>79% (11 of 14)</td><td>3</td>" in html
    assert "Surveys the participant owed whose outcome is known" in html
    assert "Completed ÷ due." in html


def test_the_analysis_says_how_it_counts_due(cohort, researcher):
    run = analysis_run_start(
        user=researcher,
        study=cohort,
        spec=AnalysisSpec(analyses=("descriptives",)),
        background=False,
    )
    (section,) = run.results["sections"]
    notes = " ".join(section["notes"])
    assert "Due: Surveys the participant owed whose outcome is known" in notes
    assert "Completion rate: Completed ÷ due." in notes

"""The retention dashboard: planted numbers, the staff scope, the page, and a query count that
does not grow with the number of participants (the dashboard and the call list)."""

import re
from datetime import timedelta
from xml.etree import ElementTree

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from surveys import retention
from surveys.models import Assignment, Instrument, Message, Response, StaffRole
from surveys.retention import NOT_KNOWN, retention_summary

S = Assignment.Status
WAVES = ("baseline", "m1", "m3", "m6", "m12")
PAGE = "/admin/surveys/study/{}/retention/"
CALL_LIST = "/admin/surveys/assignment/call-list/"
NOW = timezone.now()


@pytest.fixture
def plant(study, enrol):
    """Enrol a participant whose windows have all closed, then give each wave the status asked
    (C completed, M missed, O open, P in progress, S scheduled, X cancelled), answers and
    messages."""
    codes = {
        "C": S.COMPLETED,
        "M": S.MISSED,
        "O": S.OPEN,
        "P": S.IN_PROGRESS,
        "S": S.SCHEDULED,
        "X": S.CANCELLED,
    }
    instruments = {i.slug: i for i in Instrument.objects.filter(study=study)}
    versions = {slug: i.versions.get(number=1) for slug, i in instruments.items()}

    def _plant(site, code, statuses, *, baseline=None, m1=None, contact=None):
        participant = enrol(
            site=site,
            code=code,
            enrolled_on=timezone.localdate() - timedelta(days=400),
            contact=contact,
        )
        assignments = {a.wave.slug: a for a in participant.assignments.select_related("wave")}
        for slug, letter in zip(WAVES, statuses, strict=True):
            a = assignments[slug]
            a.status = codes[letter]
            a.completed_at = a.opens_at + timedelta(days=1) if letter == "C" else None
            a.save(update_fields=["status", "completed_at"])
        for slug, answers, instrument in (
            ("baseline", baseline, "baseline"),
            ("m1", m1, "followup"),
        ):
            if answers is None:
                continue
            a = assignments[slug]
            assert a.status == S.COMPLETED
            Response.objects.create(
                assignment=a,
                instrument=instruments[instrument],
                instrument_version=versions[instrument],
                answers=answers,
                status=Response.Status.SUBMITTED,
                started_at=a.completed_at - timedelta(minutes=5),
                submitted_at=a.completed_at,
            )
        return participant, assignments

    return _plant


def message(assignment, sequence, *, after_open_days, status="sent", channel="email"):
    at = assignment.opens_at + timedelta(days=after_open_days)
    return Message.objects.create(
        assignment=assignment,
        sequence=sequence,
        channel=channel,
        scheduled_at=at,
        status=status,
        sent_at=at if status == "sent" else None,
    )


def complete(assignment, *, after_open_days):
    assignment.completed_at = assignment.opens_at + timedelta(days=after_open_days)
    assignment.save(update_fields=["completed_at"])


@pytest.fixture
def cohort(plant, site_a, site_b):
    """Six participants with known outcomes (see the docstrings of the tests)."""

    def went_to(*codes):
        return {"attended_any": 1, "fellowships": list(codes)}

    a1, a1_waves = plant(site_a, "NYC-0001", "CCMCO", baseline={"gender": "1"}, m1=went_to("1"))
    a2, a2_waves = plant(site_a, "NYC-0002", "CMMMP", baseline={"gender": "2"})
    a3, a3_waves = plant(
        site_a, "NYC-0003", "CCCSS", baseline={"gender": "1"}, m1=went_to("6", "1")
    )
    a4, a4_waves = plant(site_a, "NYC-0004", "MCXXX", m1={"attended_any": 0})
    b1, b1_waves = plant(site_b, "LDN-0001", "CCCCC", baseline={"gender": "2"}, m1=went_to("6"))
    b2, _ = plant(site_b, "LDN-0002", "CMOSS", baseline={"gender": "3"})

    # A1, baseline: the invitation, completed half a day later: within 1 day, invitation only.
    message(a1_waves["baseline"], 0, after_open_days=0)
    complete(a1_waves["baseline"], after_open_days=0.5)
    # A1, 1 month: invitation, reminder 1 (day 3), then completed on day 4; reminder 2 failed,
    # reminder 3 went after completion: after reminder 1, within 7 days.
    message(a1_waves["m1"], 0, after_open_days=0)
    message(a1_waves["m1"], 1, after_open_days=3)
    message(a1_waves["m1"], 2, after_open_days=3.5, status="failed")
    message(a1_waves["m1"], 3, after_open_days=9)
    complete(a1_waves["m1"], after_open_days=4)
    # A3, 1 month: the invitation skipped (no contact), re-planned as sequence 1 and sent,
    # completed on day 2: one message, so the invitation only, within 3 days.
    message(a3_waves["m1"], 0, after_open_days=0, status="skipped")
    message(a3_waves["m1"], 1, after_open_days=0)
    complete(a3_waves["m1"], after_open_days=2)
    # B1, 1 month: invitation, reminders 1 and 2, completed on day 20: after reminder 2,
    # within 28 days.
    for sequence in range(3):
        message(b1_waves["m1"], sequence, after_open_days=3 * sequence)
    complete(b1_waves["m1"], after_open_days=20)
    # B1, 3 months: the invitation, completed on day 30: later than 28 days.
    message(b1_waves["m3"], 0, after_open_days=0)
    complete(b1_waves["m3"], after_open_days=30)
    # B1, baseline: a message sent only after completion does not count.
    message(b1_waves["baseline"], 0, after_open_days=2)
    # A4, 1 month: the invitation was never sent; A2, 1 month (missed): sent, not counted.
    message(a4_waves["m1"], 0, after_open_days=0, status="queued")
    message(a2_waves["m1"], 0, after_open_days=0)
    count_as_the_dispatcher_does()
    return {"a1": a1, "a2": a2, "a3": a3, "a4": a4, "b1": b1, "b2": b2}


def count_as_the_dispatcher_does():
    """Assignment.messages_sent and first_message_at as message_send keeps them: the messages
    sent before the survey was completed (tests/surveys/test_reminders.py checks the
    dispatcher itself)."""
    for assignment in Assignment.objects.all():
        sent = sorted(
            m.sent_at
            for m in assignment.messages.filter(status="sent")
            if assignment.completed_at is None or m.sent_at < assignment.completed_at
        )
        assignment.messages_sent = len(sent)
        assignment.first_message_at = sent[0] if sent else None
        assignment.save(update_fields=["messages_sent", "first_message_at"])


def per_wave(summary):
    return {w.name: (w.due, w.completed, w.in_window, w.missed) for w in summary.waves}


def split(summary):
    return {
        value.label: {w.name: (w.completed, w.due, w.in_window) for w in value.waves}
        for value in summary.subgroup.values
    }


# --- The numbers ---------------------------------------------------------------------------


def test_per_wave_counts_and_completion_rate(cohort, study, researcher):
    """Due = completed or missed; open, in progress, scheduled and cancelled are not due; the
    rate is completed ÷ due."""
    summary = retention_summary(user=researcher, study=study)
    assert per_wave(summary) == {
        "Baseline": (6, 5, 0, 1),
        "1 month": (6, 4, 0, 2),
        "3 months": (4, 2, 1, 2),
        "6 months": (3, 2, 0, 1),
        "12 months": (1, 1, 2, 0),
    }
    rates = [round(w.rate, 3) for w in summary.curve]
    assert rates == [0.833, 0.667, 0.5, 0.667, 1.0]
    # The switched-off weekly check-in has no surveys: not shown.
    assert [w.name for w in summary.waves] == [
        "Baseline",
        "1 month",
        "3 months",
        "6 months",
        "12 months",
    ]


def test_split_by_gender_with_not_known_and_sums_to_the_whole(cohort, study, researcher):
    summary = retention_summary(user=researcher, study=study, subgroup="gender")
    assert [v.label for v in summary.subgroup.values] == [
        "Woman",
        "Man",
        "Non-binary or another gender",
        "Not known",
    ]
    got = split(summary)
    assert got["Woman"] == {
        "Baseline": (2, 2, 0),
        "1 month": (2, 2, 0),
        "3 months": (1, 2, 0),
        "6 months": (1, 1, 0),
        "12 months": (0, 0, 1),
    }
    assert got["Man"]["1 month"] == (1, 2, 0) and got["Man"]["12 months"] == (1, 1, 1)
    assert got["Non-binary or another gender"]["3 months"] == (0, 0, 1)
    # A4 never answered the baseline: "Not known", missed baseline, completed the 1 month.
    assert got["Not known"]["Baseline"] == (0, 1, 0) and got["Not known"]["1 month"] == (1, 1, 0)
    for wave in summary.curve:
        parts = [w for value in summary.subgroup.values for w in value.waves if w.name == wave.name]
        assert sum(w.due for w in parts) == wave.due
        assert sum(w.completed for w in parts) == wave.completed


def test_main_fellowship_is_one_several_none_or_not_known(cohort, study, researcher):
    """From the 1-month answers: one fellowship → it, several → "Several", none (not shown
    because no meeting was attended) → "None", no 1-month survey → "Not known"."""
    summary = retention_summary(user=researcher, study=study, subgroup="main_fellowship")
    assert summary.subgroup.source == "the Follow-up answers at 1 month"
    got = split(summary)
    assert list(got) == ["Narcotics Anonymous", "SMART Recovery", "Several", "None", "Not known"]
    assert got["Narcotics Anonymous"]["3 months"] == (0, 1, 0)  # A1 missed it
    assert got["Several"]["3 months"] == (1, 1, 0)  # A3
    assert got["None"]["3 months"] == (0, 0, 0)  # A4: cancelled
    assert got["SMART Recovery"]["12 months"] == (1, 1, 0)  # B1
    assert got["Not known"]["3 months"] == (0, 1, 1)  # A2 missed, B2 open


def test_justice_involvement_is_labelled_from_the_yes_no_item(plant, site_a, study, researcher):
    plant(site_a, "NYC-0101", "CCCCC", baseline={"justice_involved": 1})
    plant(site_a, "NYC-0102", "CMMMM", baseline={"justice_involved": 0})
    summary = retention_summary(user=researcher, study=study, subgroup="justice_involved")
    got = split(summary)
    assert list(got) == ["Justice-involved", "Not justice-involved"]
    assert got["Justice-involved"]["12 months"] == (1, 1, 0)
    assert got["Not justice-involved"]["12 months"] == (0, 1, 0)


def test_time_to_completion_and_the_reminder_people_completed_after(cohort, study, researcher):
    summary = retention_summary(user=researcher, study=study)
    timing = {row.wave_name: row for row in summary.timing}
    reminders = {row.wave_name: row for row in summary.reminders}
    # Buckets: within 1, 3, 7, 14, 28 days of the first message, then later.
    assert timing["Baseline"].buckets == [1, 0, 0, 0, 0, 0]
    assert timing["Baseline"].without_message == 4  # B1's message came after completion
    assert timing["1 month"].buckets == [0, 1, 1, 0, 1, 0]  # A3 day 2, A1 day 4, B1 day 20
    assert timing["1 month"].without_message == 1  # A4: the invitation was never sent
    shares = [round(s, 3) for s in timing["1 month"].cumulative_shares]
    assert shares == [0, 0.333, 0.667, 0.667, 1]
    assert timing["3 months"].buckets == [0, 0, 0, 0, 0, 1]
    assert timing["All waves"].buckets == [1, 1, 1, 0, 1, 1]
    assert (timing["All waves"].completed, timing["All waves"].without_message) == (14, 9)
    # Reminders before completion: 0 = the invitation only; a skipped message, a failed
    # reminder and one sent after completion do not count.
    assert summary.max_reminders == 2
    assert reminders["1 month"].by_reminders == [1, 1, 1]
    assert reminders["Baseline"].by_reminders == [1, 0, 0]
    assert reminders["All waves"].by_reminders == [3, 1, 1]
    assert reminders["All waves"].without_message == 9


# --- Who sees what -------------------------------------------------------------------------


def test_a_coordinator_sees_only_their_sites_numbers(cohort, study, coordinator_a, site_b):
    summary = retention_summary(user=coordinator_a, study=study)
    assert per_wave(summary) == {
        "Baseline": (4, 3, 0, 1),
        "1 month": (4, 3, 0, 1),
        "3 months": (3, 1, 0, 2),
        "6 months": (2, 1, 0, 1),
        "12 months": (0, 0, 2, 0),
    }
    reminders = {row.wave_name: row for row in summary.reminders}
    assert summary.max_reminders == 1 and reminders["1 month"].by_reminders == [1, 1]
    # Asking for the other site gives nothing, not its numbers.
    other = retention_summary(user=coordinator_a, study=study, site=site_b, subgroup="gender")
    assert all(w.due == w.completed == 0 for w in other.waves)
    assert other.subgroup.values == [] and other.timing == []


def test_a_researcher_sees_every_site_and_one_site_on_asking(cohort, study, researcher, site_b):
    assert per_wave(retention_summary(user=researcher, study=study))["Baseline"] == (6, 5, 0, 1)
    one = retention_summary(user=researcher, study=study, site=site_b)
    assert per_wave(one)["Baseline"] == (2, 2, 0, 0) and per_wave(one)["3 months"] == (1, 1, 1, 0)


def test_the_page_for_a_coordinator_refuses_the_other_site(
    client, cohort, study, coordinator_a, site_a, site_b
):
    client.force_login(coordinator_a)
    page = client.get(PAGE.format(study.pk))
    assert page.status_code == 200
    html = page.text
    assert "75% (3 of 4)" in html  # the baseline at site A
    assert "83% (5 of 6)" not in html  # the whole study's baseline
    assert f'<option value="{site_b.pk}"' not in html
    assert client.get(PAGE.format(study.pk), {"site": site_b.pk}).status_code == 404
    assert client.get(PAGE.format(study.pk), {"site": site_a.pk}).status_code == 200


def test_a_user_without_a_role_in_the_study_gets_404(client, cohort, study, staff_user):
    from recovery.services import study_create_from_template

    other_study = study_create_from_template(slug="other", name="Other", sites=[("X", "X", "UTC")])
    outsider = staff_user(study=other_study, role=StaffRole.Role.PRINCIPAL_INVESTIGATOR)
    client.force_login(outsider)
    assert client.get(PAGE.format(study.pk)).status_code == 404
    assert client.get(PAGE.format(other_study.pk)).status_code == 200


def test_the_page_shows_charts_with_tables_and_never_an_identifier(
    client, plant, site_a, study, researcher
):
    plant(
        site_a,
        "NYC-0777",
        "CCMMM",
        baseline={"gender": "1"},
        contact={
            "first_name": "Rosalind",
            "last_name": "Quintero",
            "email": "rosalind.q@example.org",
            "phone": "+12125550123",
        },
    )
    client.force_login(researcher)
    html = client.get(PAGE.format(study.pk), {"subgroup": "gender"}).text
    assert html.count('role="img"') == 4 and html.count('<div class="module retention-table">') == 4
    assert 'aria-labelledby="chart-curve-title chart-curve-desc"' in html
    assert "Retention curve by gender" in html and "Woman" in html
    assert "Completed ÷ due." in html and "completed ÷ due" in html  # definitions, caption
    for identifier in ("Rosalind", "Quintero", "rosalind.q", "5550123", "NYC-0777"):
        assert identifier not in html
    # Each chart is well-formed SVG, named by its title and description.
    svgs = re.findall(r'<svg xmlns="http://www.w3.org/2000/svg" class="chart".*?</svg>', html, re.S)
    assert len(svgs) == 4
    for svg in svgs:
        root = ElementTree.fromstring(svg)  # noqa: S314 — our own page
        title, desc = root[0], root[1]
        assert title.tag.endswith("title") and desc.tag.endswith("desc") and title.text
        assert root.get("aria-labelledby") == f"{title.get('id')} {desc.get('id')}"


def test_the_dashboard_is_linked_from_the_study_pages(client, study, researcher):
    client.force_login(researcher)
    link = PAGE.format(study.pk)
    assert link in client.get("/admin/surveys/study/").text
    assert link in client.get(f"/admin/surveys/study/{study.pk}/change/").text


def test_a_label_is_escaped_in_the_chart_and_the_table(client, plant, site_a, study, researcher):
    from surveys.models import Item

    item = Item.objects.get(version__instrument__study=study, variable="gender")
    item.choices = [{"code": "1", "label": {"en": "<script>alert(1)</script>"}}]
    item.save(update_fields=["choices"])
    plant(site_a, "NYC-0901", "CCCCC", baseline={"gender": "1"})
    client.force_login(researcher)
    html = client.get(PAGE.format(study.pk), {"subgroup": "gender"}).text
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


# --- Queries do not grow with the number of participants -------------------------------------


def _busy_participant(plant, site, n):
    """A participant with answers, a completed and a missed survey and sent messages."""
    _, waves = plant(
        site,
        f"{site.code}-5{n:03d}",
        "CCMOS",
        baseline={"gender": str(1 + n % 3)},
        m1={"fellowships": ["1", "4"][: 1 + n % 2], "attended_any": 1},
    )
    message(waves["m1"], 0, after_open_days=0)
    message(waves["m1"], 1, after_open_days=0.5)
    complete(waves["m1"], after_open_days=0.6 + n % 20)
    count_as_the_dispatcher_does()


def _queries(function) -> int:
    with CaptureQueriesContext(connection) as captured:
        function()
    return len(captured)


def test_the_dashboard_costs_the_same_queries_for_few_or_many(
    client, plant, site_a, site_b, study, coordinator_a, researcher
):
    def summary_queries(user, subgroup):
        return _queries(lambda: retention_summary(user=user, study=study, subgroup=subgroup))

    def page_queries(user, **params):
        client.force_login(user)
        client.get(PAGE.format(study.pk), params)  # warm: the session, content types
        return _queries(lambda: client.get(PAGE.format(study.pk), params))

    def measure():
        return (
            summary_queries(researcher, None),
            summary_queries(researcher, "main_fellowship"),
            summary_queries(coordinator_a, "gender"),
            page_queries(researcher, subgroup="race_ethnicity"),
            page_queries(coordinator_a, site=site_a.pk, subgroup="main_fellowship"),
        )

    for n in range(3):
        _busy_participant(plant, site_a if n % 2 else site_b, n)
    few = measure()
    for n in range(3, 30):
        _busy_participant(plant, site_a if n % 2 else site_b, n)
    many = measure()
    assert retention_summary(user=researcher, study=study).waves[1].completed == 30
    assert few == many
    around_the_split = 4 if connection.vendor == "postgresql" else 0  # see retention_summary
    assert few[:3] == (4, 6 + around_the_split, 6 + around_the_split)


def test_the_call_list_page_costs_the_same_queries_for_few_or_many(
    client, site_a, enrol, coordinator_a, researcher
):
    def overdue(n):
        p = enrol(
            site=site_a,
            code=f"NYC-7{n:03d}",
            enrolled_on=timezone.localdate() - timedelta(days=30),
            contact={"phone": f"+1212555{n:04d}"},
        )
        p.assignments.filter(wave__slug="m1").update(
            status=S.OPEN, due_at=timezone.now() - timedelta(days=1),
            closes_at=timezone.now() + timedelta(days=3),
        )  # fmt: skip

    def page_queries(user):
        client.force_login(user)
        client.get(CALL_LIST)
        with CaptureQueriesContext(connection) as captured:
            html = client.get(CALL_LIST).text
        return len(captured), html.count("NYC-7")

    for n in range(3):
        overdue(n)
    few = page_queries(coordinator_a), page_queries(researcher)
    for n in range(3, 30):
        overdue(n)
    many = page_queries(coordinator_a), page_queries(researcher)
    assert [rows for _, rows in few] == [3, 3] and [rows for _, rows in many] == [30, 30]
    assert [queries for queries, _ in few] == [queries for queries, _ in many]


def test_subgroups_are_registered_by_the_recovery_app():
    names = [subgroup.name for subgroup in retention.subgroups()]
    for name in (
        "race_ethnicity",
        "gender",
        "justice_involved",
        "mat_status",
        "treatment_setting",
        "main_fellowship",
    ):
        assert name in names
    assert retention.collapse_one_or_several(["4"]) == "4"
    assert retention.collapse_one_or_several(["4", "1"]) == retention.SEVERAL
    assert retention.collapse_one_or_several([]) == retention.collapse_one_or_several(None)
    assert NOT_KNOWN not in names


@pytest.mark.skipif(connection.vendor != "postgresql", reason="a PostgreSQL planner setting")
def test_the_split_leaves_the_planner_settings_as_they_were(cohort, study, researcher):
    from django.db import transaction

    with transaction.atomic(), connection.cursor() as cursor:  # as in one request
        summary = retention_summary(user=researcher, study=study, subgroup="gender")
        assert summary.subgroup is not None
        cursor.execute("SHOW enable_mergejoin")
        assert cursor.fetchone()[0] == "on"

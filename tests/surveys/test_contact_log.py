"""The contact log: coordinators record their attempts to reach a participant."""

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from surveys.models import ContactAttempt
from surveys.services import contact_attempt_log


@pytest.fixture
def participant(site_a, enrol):
    return enrol(
        site=site_a, code="NYC-0042", enrolled_on=timezone.localdate() - timedelta(days=30),
        contact={"phone": "+1 555 010 4477"},
    )  # fmt: skip


def test_an_attempt_is_logged_with_who_and_when(participant, coordinator_a):
    month1 = participant.assignments.get(wave__slug="m1")
    attempt = contact_attempt_log(
        participant=participant, method="call", outcome="left_message", by=coordinator_a,
        note="Voicemail; will try Friday.", assignment=month1,
    )  # fmt: skip
    assert attempt.by == coordinator_a and attempt.attempted_at <= timezone.now()
    assert participant.contact_attempts.get().get_outcome_display() == "Left a message"


@pytest.mark.parametrize(
    ("fields", "error"),
    [({"method": "pigeon"}, "method"), ({"outcome": "maybe"}, "outcome")],
)
def test_bad_values_are_refused_and_nothing_is_saved(participant, coordinator_a, fields, error):
    values = {"method": "call", "outcome": "no_answer", **fields}
    with pytest.raises(ValidationError) as refused:
        contact_attempt_log(participant=participant, by=coordinator_a, **values)
    assert error in refused.value.message_dict
    assert not ContactAttempt.objects.exists()


def test_another_participants_survey_is_refused(participant, site_a, enrol, coordinator_a):
    other = enrol(site=site_a, code="NYC-0043", enrolled_on=timezone.localdate())
    with pytest.raises(ValidationError):
        contact_attempt_log(
            participant=participant, method="call", outcome="reached", by=coordinator_a,
            assignment=other.assignments.first(),
        )  # fmt: skip


def test_coordinators_log_attempts_in_the_admin_and_researchers_never_see_the_log(
    client, participant, coordinator_a, researcher
):
    page = f"/admin/surveys/participant/{participant.pk}/change/"
    client.force_login(coordinator_a)
    html = client.get(page).text
    assert "Contact attempts" in html and "Left a message" in html
    client.force_login(researcher)
    html = client.get(page).text
    assert "Contact attempts" not in html


def form_fields(html: str) -> dict:
    """The values a browser would send for a Django admin form as rendered."""
    from html.parser import HTMLParser

    fields: dict = {}

    class Parser(HTMLParser):
        select = None

        def handle_starttag(self, tag, attrs):
            a = dict(attrs)
            name = a.get("name")
            if tag == "input" and name and a.get("type") not in ("submit", "button"):
                if a.get("type") in ("checkbox", "radio") and "checked" not in a:
                    return
                fields[name] = a.get("value", "")
            elif tag == "textarea" and name:
                fields[name] = ""
            elif tag == "select" and name:
                self.select = name
                fields.setdefault(name, "")
            elif tag == "option" and self.select and "selected" in a:
                fields[self.select] = a.get("value", "")

        def handle_endtag(self, tag):
            if tag == "select":
                self.select = None

    Parser().feed(html)
    return fields


def test_an_attempt_saved_in_the_admin_records_the_coordinator(client, participant, coordinator_a):
    page = f"/admin/surveys/participant/{participant.pk}/change/"
    client.force_login(coordinator_a)
    data = form_fields(client.get(page).text)
    prefix = next(k for k in data if k.endswith("-TOTAL_FORMS") and "contact_attempt" in k)
    prefix = prefix.removesuffix("-TOTAL_FORMS")
    data.update({
        f"{prefix}-0-method": "call", f"{prefix}-0-outcome": "no_answer",
        f"{prefix}-0-note": "Rang twice.",
        f"{prefix}-0-attempted_at_0": "2026-11-24", f"{prefix}-0-attempted_at_1": "10:30:00",
    })  # fmt: skip
    data.pop("_saveasnew", None)
    reply = client.post(page, data)
    assert reply.status_code == 302, reply.content.decode()[:3000]
    attempt = ContactAttempt.objects.get()
    assert (attempt.by, attempt.outcome, attempt.note) == (
        coordinator_a,
        "no_answer",
        "Rang twice.",
    )


def test_saving_the_page_later_for_another_reason_adds_no_empty_attempt(
    client, participant, coordinator_a
):
    """The blank row's time was "now" when the page was drawn; a save seconds later is not
    an attempt missing its method and outcome."""
    import time

    page = f"/admin/surveys/participant/{participant.pk}/change/"
    client.force_login(coordinator_a)
    data = form_fields(client.get(page).text)
    data.pop("_saveasnew", None)
    time.sleep(1.1)  # the clock moves on between drawing the page and saving it
    reply = client.post(page, {**data, "language": "es"})
    assert reply.status_code == 302, reply.content.decode()[:3000]
    participant.refresh_from_db()
    assert participant.language == "es" and not ContactAttempt.objects.exists()


# --- The call list -----------------------------------------------------------------------------


def overdue(participant, *, days_left=3):
    """Make the participant's month-1 survey overdue, closing in ``days_left`` days."""
    from surveys.models import Assignment

    now = timezone.now()
    Assignment.objects.filter(participant=participant, wave__slug="m1").update(
        status="open",
        opens_at=now - timedelta(days=2),
        due_at=now - timedelta(days=1),
        closes_at=now + timedelta(days=days_left),
    )


def test_the_call_list_puts_the_most_urgent_first_with_the_last_attempt(
    client, site_a, enrol, participant, coordinator_a
):
    later = enrol(
        site=site_a, code="NYC-0050", enrolled_on=timezone.localdate() - timedelta(days=30),
        contact={"phone": "+1 555 010 4499"},
    )  # fmt: skip
    overdue(participant, days_left=5)
    overdue(later, days_left=2)
    contact_attempt_log(participant=participant, method="call", outcome="no_answer", by=None)
    client.force_login(coordinator_a)
    page = client.get("/admin/surveys/assignment/call-list/").text
    assert page.index("NYC-0050") < page.index("NYC-0042")  # closes sooner
    assert "call, no_answer" in page
    assert "+1 555 010 4477" in page  # coordinators see the phone


def test_the_call_list_is_scoped_to_the_sites_and_researchers_see_no_phone(
    client, participant, staff_user, study, site_b, researcher
):
    from surveys.models import StaffRole

    overdue(participant)
    other = staff_user(study=study, role=StaffRole.Role.COORDINATOR, sites=[site_b], username="b")
    client.force_login(other)
    assert "NYC-0042" not in client.get("/admin/surveys/assignment/call-list/").text
    client.force_login(researcher)
    page = client.get("/admin/surveys/assignment/call-list/")
    assert "NYC-0042" in page.text and "555" not in page.text


def test_a_survey_is_overdue_only_once_its_due_day_is_over(site_a, enrol, coordinator_a):
    from surveys.selectors import call_list_rows

    person = enrol(site=site_a, code="NYC-0077", enrolled_on=timezone.localdate())
    baseline = person.assignments.get(wave__slug="baseline")
    baseline.status = "open"
    baseline.save(update_fields=["status"])
    during = baseline.due_at + timedelta(hours=20)  # late on the due day, in New York
    after = baseline.due_at + timedelta(hours=25)
    assert baseline.closes_at > after + timedelta(days=7)  # not closing soon either
    assert call_list_rows(user=coordinator_a, now=during) == []
    (row,) = call_list_rows(user=coordinator_a, now=after)
    assert row.wave.slug == "baseline" and row.overdue


def test_the_call_list_costs_the_same_queries_for_few_or_many(site_a, enrol, coordinator_a):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from surveys.selectors import call_list

    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            rows = list(call_list(user=coordinator_a))
            [(r.wave.name, r.participant.site.code, r.last_attempt_at) for r in rows]
        return len(queries), len(rows)

    for n in range(3):
        overdue(enrol(site=site_a, code=f"NYC-1{n:03d}", enrolled_on=timezone.localdate()))
    few = count()
    for n in range(3, 15):
        overdue(enrol(site=site_a, code=f"NYC-1{n:03d}", enrolled_on=timezone.localdate()))
    many = count()
    assert (few[1], many[1]) == (3, 15) and few[0] == many[0]


def test_send_now_from_the_call_list_brings_the_next_reminder_forward(
    client, participant, coordinator_a
):
    from surveys.models import Message

    participant.contact.email = "dana@example.org"
    participant.contact.save()
    from surveys.reminders import reminders_plan

    overdue(participant)
    reminders_plan(assignments=list(participant.assignments.all()))
    month1 = participant.assignments.get(wave__slug="m1")
    client.force_login(coordinator_a)
    reply = client.post(f"/admin/surveys/assignment/{month1.pk}/send-now/")
    assert reply.status_code == 302
    assert Message.objects.filter(
        assignment=month1, status="queued", scheduled_at__lte=timezone.now()
    ).exists()


def test_the_call_list_is_linked_from_the_assignments_list(client, coordinator_a, participant):
    client.force_login(coordinator_a)
    assert "/admin/surveys/assignment/call-list/" in client.get("/admin/surveys/assignment/").text

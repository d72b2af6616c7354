"""The contact log: coordinators record their attempts to reach a participant."""

import re
from datetime import UTC, date, datetime, timedelta
from html import unescape
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

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


@pytest.mark.parametrize(
    ("due_day", "local_now", "listed"),
    [
        # The day clocks go forward has 23 hours: half an hour after it ends (23.5 hours
        # after its midnight) the survey is overdue.
        (date(2025, 3, 9), datetime(2025, 3, 10, 0, 30), True),
        (date(2025, 3, 9), datetime(2025, 3, 9, 23, 30), False),
        # The day clocks go back has 25: at 23:30 (24.5 hours on) it is still the due day.
        (date(2025, 11, 2), datetime(2025, 11, 2, 23, 30), False),
        (date(2025, 11, 2), datetime(2025, 11, 3, 0, 30), True),
    ],
)
def test_overdue_follows_the_participants_calendar_on_the_days_clocks_change(
    site_a, enrol, coordinator_a, due_day, local_now, listed
):
    """Found by review: "overdue" was 24 hours after the due day's midnight, an hour off on
    the days New York's clocks change (listed an hour late in March, an hour early in
    November). Both the admin's call list and the API read these rows."""
    from surveys.scheduling import local_midnight
    from surveys.selectors import call_list_rows

    ny = ZoneInfo("America/New_York")
    person = enrol(
        site=site_a, code="NYC-0901", timezone="America/New_York",
        enrolled_on=due_day - timedelta(days=30),
    )  # fmt: skip
    person.assignments.exclude(wave__slug="m1").update(status="completed")
    person.assignments.filter(wave__slug="m1").update(
        status="open",
        opens_at=local_midnight(due_day - timedelta(days=7), ny),
        due_at=local_midnight(due_day, ny),
        closes_at=local_midnight(due_day + timedelta(days=29), ny),  # not closing soon
    )
    # In UTC, as timezone.now() gives it (arithmetic on a New York time would be on its clock).
    now = local_now.replace(tzinfo=ny).astimezone(UTC)
    rows = call_list_rows(user=coordinator_a, now=now)
    assert [(row.participant.code, row.overdue) for row in rows] == (
        [("NYC-0901", True)] if listed else []
    )


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


def test_the_call_list_shows_the_due_and_last_days_in_each_participants_own_zone(
    client, site_a, enrol, coordinator_a
):
    """The window closes at the participant's local midnight: in UTC that is already the next
    day in Los Angeles (08:00), and a due midnight in Tehran is the day before (20:30). The
    list shows the days the participant lives, and their zone."""
    from zoneinfo import ZoneInfo

    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from surveys.models import Assignment
    from surveys.scheduling import local_midnight

    today = timezone.now().date()
    due, closing = today - timedelta(days=2), today + timedelta(days=4)
    enrolled = today - timedelta(days=40)  # the baseline is over: one row each, the month 1
    for code, zone in (("NYC-0061", "America/Los_Angeles"), ("NYC-0062", "Asia/Tehran")):
        person = enrol(site=site_a, code=code, timezone=zone, enrolled_on=enrolled)
        Assignment.objects.filter(participant=person, wave__slug="m1").update(
            status="open",
            opens_at=local_midnight(due - timedelta(days=7), ZoneInfo(zone)),
            due_at=local_midnight(due, ZoneInfo(zone)),
            closes_at=local_midnight(closing, ZoneInfo(zone)),
        )
    client.force_login(coordinator_a)
    with CaptureQueriesContext(connection) as two_rows:
        page = client.get("/admin/surveys/assignment/call-list/").text
    assert "Last day to answer" in page and "Last contact attempt (UTC)" in page
    rows = {code: " ".join(unescape(re.sub(r"<[^>]+>", " ", row)).split()) for code, row in
            re.findall(r"<tr>\s*<td><a [^>]+>(NYC-\d+)</a>(.*?)</tr>", page, re.S)}  # fmt: skip
    last_day = f"{closing - timedelta(days=1):%Y-%m-%d}"
    for code, zone in (("NYC-0061", "America/Los_Angeles"), ("NYC-0062", "Asia/Tehran")):
        assert f"{due:%Y-%m-%d} (overdue)" in rows[code], rows[code]
        assert f"(overdue) {last_day} {zone} " in rows[code], rows[code]
        assert f"{closing:%Y-%m-%d}" not in rows[code]

    # The participant's zone comes with each row: more rows, no more queries.
    for n in range(3):
        person = enrol(
            site=site_a, code=f"NYC-007{n}", timezone="Asia/Tehran", enrolled_on=enrolled
        )
        overdue(person)
    with CaptureQueriesContext(connection) as five_rows:
        page = client.get("/admin/surveys/assignment/call-list/").text
    assert page.count("Asia/Tehran") == 4
    assert len(five_rows) == len(two_rows)


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


def _participant_page_saved(client, participant, **changes):
    """Save the participant's admin page as a browser would, with ``changes`` made."""
    page = f"/admin/surveys/participant/{participant.pk}/change/"
    data = form_fields(client.get(page).text)
    data.pop("_saveasnew", None)
    for name, value in changes.items():
        assert name in data, sorted(data)
        data[name] = value
    reply = client.post(page, data)
    assert reply.status_code == 302, reply.text[:3000]


def test_logging_the_call_after_send_now_keeps_the_reminder_going_now(
    client, participant, coordinator_a
):
    """Found by review: the call list's "Send a reminder now", then "Log an attempt" on the
    participant's page: saving the page planned every message again at its rule's time, and
    the reminder said to go within a minute went days later. Only a changed channel, e-mail
    address or phone number plans them again."""
    from surveys.models import Message
    from surveys.reminders import reminders_plan

    participant.contact.email = "dana@example.org"
    participant.contact.save()
    overdue(participant)
    reminders_plan(assignments=list(participant.assignments.all()))
    month1 = participant.assignments.get(wave__slug="m1")
    client.force_login(coordinator_a)
    client.post(f"/admin/surveys/assignment/{month1.pk}/send-now/")
    due_now = Message.objects.filter(
        assignment=month1, status="queued", scheduled_at__lte=timezone.now()
    )
    assert due_now.count() == 1
    _participant_page_saved(
        client, participant,
        **{"contact_attempts-0-method": "call", "contact_attempts-0-outcome": "left_message"},
    )  # fmt: skip
    assert ContactAttempt.objects.filter(participant=participant).count() == 1
    assert due_now.count() == 1

    # A new phone number and channel: the messages are planned again, as texts.
    _participant_page_saved(
        client, participant, **{"contact-0-phone": "+1 555 010 4499", "preferred_channel": "sms"}
    )
    queued = Message.objects.filter(assignment=month1, status="queued")
    assert set(queued.values_list("channel", flat=True)) == {"sms"}


def test_an_attempt_typed_with_a_day_ahead_is_refused(client, participant, coordinator_a):
    """Found by review: the participant page's contact log took any time, and an attempt
    typed with next year's date stayed the call list's last attempt above every real one."""
    client.force_login(coordinator_a)
    page = f"/admin/surveys/participant/{participant.pk}/change/"
    data = form_fields(client.get(page).text)
    data.pop("_saveasnew", None)
    ahead = timezone.now() + timedelta(days=365)
    data.update(
        {
            "contact_attempts-0-method": "call",
            "contact_attempts-0-outcome": "no_answer",
            "contact_attempts-0-attempted_at_0": f"{ahead:%Y-%m-%d}",
            "contact_attempts-0-attempted_at_1": f"{ahead:%H:%M:%S}",
        }
    )
    reply = client.post(page, data)
    assert reply.status_code == 200
    assert "An attempt is logged when it was made: not in the future." in reply.text
    assert not ContactAttempt.objects.filter(participant=participant).exists()
    now = timezone.now()
    data["contact_attempts-0-attempted_at_0"] = f"{now:%Y-%m-%d}"
    data["contact_attempts-0-attempted_at_1"] = f"{now:%H:%M:%S}"
    assert client.post(page, data).status_code == 302
    assert ContactAttempt.objects.filter(participant=participant).count() == 1


def test_the_call_list_is_linked_from_the_assignments_list(client, coordinator_a, participant):
    client.force_login(coordinator_a)
    assert "/admin/surveys/assignment/call-list/" in client.get("/admin/surveys/assignment/").text


# --- The call list's pages ----------------------------------------------------------------------

CALL_LIST = "/admin/surveys/assignment/call-list/"
# A row of the call list page: the participant's study ID, then site and wave.
ROW = re.compile(r'<td><a href="[^"]*">([A-Z]+-\d+)</a></td>\s*<td>[^<]*</td>\s*<td>([^<]*)</td>')
PAGE_LINK = re.compile(r'<a href="([^"]*)" rel="(prev|next)">')


def chase_every_survey(enrol, site, codes):
    """Enrol a participant per code with all five surveys open and overdue; a participant's
    five close at the same moment, so only the primary key orders them."""
    from surveys.models import Assignment

    now = timezone.now()
    for n, code in enumerate(codes):
        person = enrol(site=site, code=code, enrolled_on=timezone.localdate() - timedelta(days=30))
        Assignment.objects.filter(participant=person).update(
            status="open",
            opens_at=now - timedelta(days=3),
            due_at=now - timedelta(days=2),
            closes_at=now + timedelta(days=1 + n % 3),
        )


def rows_on(client, **params) -> list[tuple[str, str]]:
    return ROW.findall(client.get(CALL_LIST, params).text)


def links_on(html: str) -> dict[str, dict[str, list[str]]]:
    """The previous and next links (both bars): their query parameters."""
    links = {}
    for href, rel in PAGE_LINK.findall(html):
        query = parse_qs(urlsplit(unescape(href)).query)
        assert links.setdefault(rel, query) == query  # the bars above and below agree
    return links


def test_the_call_list_pages_hold_every_row_once_in_the_lists_order(
    client, site_a, site_b, enrol, coordinator_a
):
    from surveys.selectors import call_list_rows

    chase_every_survey(enrol, site_a, [f"NYC-2{n:03d}" for n in range(50)])  # 250 surveys
    chase_every_survey(enrol, site_b, [f"LDN-2{n:03d}" for n in range(4)])  # not their site
    client.force_login(coordinator_a)
    pages = [client.get(CALL_LIST, {"page": n}).text for n in (1, 2, 3)]
    rows = [ROW.findall(page) for page in pages]
    assert [len(r) for r in rows] == [100, 100, 50]
    whole = [(r.participant.code, str(r.wave.name)) for r in call_list_rows(user=coordinator_a)]
    assert len(whole) == 250 and len(set(whole)) == 250
    assert rows[0] + rows[1] + rows[2] == whole  # none twice, none missing, the same order
    for n, page in enumerate(pages, start=1):
        assert "250 survey(s) to chase" in page  # the whole list's number on every page
        assert f"Page {n} of 3" in page
        assert "LDN-" not in page  # the coordinator's own site only, on every page
    assert set(links_on(pages[0])) == {"next"} and set(links_on(pages[2])) == {"prev"}
    assert links_on(pages[1]) == {"prev": {"page": ["1"]}, "next": {"page": ["3"]}}


def test_a_page_past_the_end_shows_the_last_and_a_wrong_one_the_first(
    client, site_a, enrol, coordinator_a, call_list_page_size
):
    chase_every_survey(enrol, site_a, ["NYC-3001", "NYC-3002"])  # 10 surveys: 3, 3, 3, 1
    client.force_login(coordinator_a)
    past_the_end = client.get(CALL_LIST, {"page": 99})
    assert past_the_end.status_code == 200 and "Page 4 of 4" in past_the_end.text
    assert len(ROW.findall(past_the_end.text)) == 1
    assert ROW.findall(past_the_end.text) == rows_on(client, page=4)
    for wrong in ("x", "", "2.5"):
        page = client.get(CALL_LIST, {"page": wrong}).text
        assert "Page 1 of 4" in page and ROW.findall(page) == rows_on(client)


def test_the_page_links_and_send_now_keep_the_other_query_parameters(
    client, site_a, enrol, coordinator_a, call_list_page_size
):
    """The list has no filter or sort of its own yet: whatever the address carries besides the
    page number (one added later, or another page's) is kept by previous, next and send-now."""
    from surveys.models import Assignment

    chase_every_survey(enrol, site_a, ["NYC-3001", "NYC-3002"])
    client.force_login(coordinator_a)
    html = client.get(CALL_LIST, {"site": "NYC", "o": "-2", "page": 2}).text
    assert links_on(html) == {
        "prev": {"site": ["NYC"], "o": ["-2"], "page": ["1"]},
        "next": {"site": ["NYC"], "o": ["-2"], "page": ["3"]},
    }
    first = Assignment.objects.get(
        participant__code=ROW.findall(html)[0][0], wave__name=ROW.findall(html)[0][1]
    )
    action = f"/admin/surveys/assignment/{first.pk}/send-now/?site=NYC&amp;o=-2&amp;page=2"
    assert f'action="{action}"' in html
    reply = client.post(unescape(action))
    assert reply.status_code == 302
    assert parse_qs(urlsplit(reply.url).query) == {"site": ["NYC"], "o": ["-2"], "page": ["2"]}
    assert urlsplit(reply.url).path == CALL_LIST


def test_only_overdue_rows_are_marked_overdue(client, site_a, enrol, coordinator_a):
    """A survey due today that closes within the week is on the list, not yet overdue."""
    from surveys.models import Assignment

    now = timezone.now()
    late = enrol(site=site_a, code="NYC-4001", enrolled_on=timezone.localdate())
    today = enrol(site=site_a, code="NYC-4002", enrolled_on=timezone.localdate())
    overdue(late)
    Assignment.objects.filter(participant=today, wave__slug="m1").update(
        status="open", opens_at=now - timedelta(days=6), due_at=now - timedelta(hours=2),
        closes_at=now + timedelta(days=3),
    )  # fmt: skip
    client.force_login(coordinator_a)
    html = client.get(CALL_LIST).text
    marked = {
        code: "(overdue)" in row
        for code, row in re.findall(r"<tr>\s*<td><a [^>]*>([A-Z]+-\d+)</a>(.*?)</tr>", html, re.S)
    }
    assert marked == {"NYC-4001": True, "NYC-4002": False}


def test_a_page_of_the_call_list_audits_only_the_phones_it_shows(
    client, site_a, enrol, coordinator_a, call_list_page_size
):
    from surveys.models import AuditEvent

    for n in range(4):
        overdue(
            enrol(site=site_a, code=f"NYC-500{n}", enrolled_on=timezone.localdate(),
                  contact={"phone": f"+1 555 010 500{n}"}),
            days_left=n + 1,
        )  # fmt: skip
    client.force_login(coordinator_a)
    page = client.get(CALL_LIST, {"page": 2}).text
    assert "+1 555 010 5003" in page and "+1 555 010 5000" not in page
    event = AuditEvent.objects.filter(action=AuditEvent.Action.CONTACT_VIEW).get()
    assert event.details == {"where": "call list page", "participants": ["NYC-5003"]}

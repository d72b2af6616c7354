"""The participant's survey without a browser: the no-JavaScript form, the participant API,
and safety alerts."""

import json
import re
import uuid
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from surveys.links import participant_link_create
from surveys.models import Response, SafetyAlert
from surveys.safety import safety_alert_email_send
from tests.api.test_responses_api import ANSWERS


@pytest.fixture
def participant(site_a, enrol):
    site_a.study.alert_email = "team@example.org"
    site_a.study.crisis_resources = {"en": "Call the study line: 555-0100."}
    site_a.study.save()
    return enrol(
        site=site_a,
        code="NYC-0042",
        enrolled_on=timezone.localdate() - timedelta(days=30),
        timezone="America/New_York",
    )


@pytest.fixture
def month1(participant):
    return participant.assignments.get(wave__slug="m1")


@pytest.fixture
def signed_in(client, participant):
    _, token = participant_link_create(participant=participant)
    client.get(f"/p/{token}")
    return client


def api(assignment, action):
    return f"/api/v1/participant/assignments/{assignment.pk}/responses/followup/{action}/"


def test_the_survey_page_lists_every_question_for_a_phone_without_javascript(signed_in, month1):
    page = signed_in.get(f"/p/s/{month1.pk}/followup/")
    assert page.status_code == 200
    html = page.text
    assert 'name="attended_any"' in html and 'name="craving"' in html
    assert html.count('class="screen"') > 20  # one question (or matrix) per screen


def test_the_page_checks_the_longest_run_of_use_against_the_days_since_enrolment(signed_in, month1):
    """No survey sent yet: the limit is the days since enrolment (30 days ago), both days
    counted; the phone checks it before sending (data-max) and the no-JavaScript form is
    told the same number by the server."""
    today = timezone.localdate(timezone=ZoneInfo("America/New_York"))
    days = (today - month1.participant.enrolled_on).days + 1  # 31, or 30 or 32 near midnight
    assert 30 <= days <= 32
    html = signed_in.get(f"/p/s/{month1.pk}/followup/").text
    [question] = re.findall(r'<div class="q" id="q-longest_use_run_days"[^>]*>', html)
    assert 'data-min="0"' in question and f'data-max="{days}"' in question
    form = {**ANSWERS, "any_use_since_last": "1", "longest_use_run_days": str(days + 1)}
    sent = signed_in.post(f"/p/s/{month1.pk}/followup/", {**form, "client_id": str(uuid.uuid4())})
    assert sent.status_code == 400 and f"Enter a number from 0 to {days}." in sent.text
    assert not Response.objects.filter(status=Response.Status.SUBMITTED).exists()


def test_the_form_without_javascript_submits_once_and_shows_the_next_survey(signed_in, month1):
    form = dict(ANSWERS)
    form["client_id"] = str(uuid.uuid4())
    reply = signed_in.post(f"/p/s/{month1.pk}/followup/", form)
    assert reply.status_code == 302 and reply["Location"].endswith("/done")
    done = signed_in.get(reply["Location"]).text
    assert "Thank you" in done and "3 months" in done
    assert Response.objects.get().status == Response.Status.SUBMITTED
    again = signed_in.post(f"/p/s/{month1.pk}/followup/", form)
    assert again.status_code == 302
    assert Response.objects.count() == 1


def test_a_form_sent_again_with_changed_answers_keeps_the_first_and_says_so(
    signed_in, participant, month1, coordinator_a
):
    form = {**ANSWERS, "client_id": str(uuid.uuid4())}
    done_url = f"/p/s/{month1.pk}/followup/done"
    assert signed_in.post(f"/p/s/{month1.pk}/followup/", form).status_code == 302
    # The same answers sent again (the first reply never reached the phone): nothing to say.
    same = signed_in.post(f"/p/s/{month1.pk}/followup/", form)
    assert same.status_code == 302 and same["Location"].endswith(done_url)
    assert "kept the answers" not in signed_in.get(done_url).text
    # The participant changed an answer meanwhile and sent again: the first answers stand
    # and the done page says the change was not saved.
    again = signed_in.post(f"/p/s/{month1.pk}/followup/", {**form, "craving": "7"})
    assert again.status_code == 302 and again["Location"].endswith(done_url)
    done = signed_in.get(again["Location"]).text
    assert "we kept the answers you sent first" in done
    assert Response.objects.get().answers["craving"] == ANSWERS["craving"]
    # It stays said when the participant opens the survey again later (no query to lose).
    reopened = signed_in.get(f"/p/s/{month1.pk}/followup/", follow=True)
    assert "we kept the answers you sent first" in reopened.text
    participant.language = "es"
    participant.save()
    assert "conservamos las que envió primero" in signed_in.get(done_url).text
    # Staff see on the response when a later change was refused.
    staff = Client()
    staff.force_login(coordinator_a)
    response = Response.objects.get()
    page = staff.get(reverse("admin:surveys_response_change", args=[response.pk])).text
    assert "Changes refused (UTC)" in page
    assert response.changes_refused_at is not None


def test_the_form_without_javascript_shows_errors_per_question(signed_in, month1):
    reply = signed_in.post(
        f"/p/s/{month1.pk}/followup/", {"client_id": str(uuid.uuid4()), "craving": "11"}
    )
    assert reply.status_code == 400
    assert 'id="error-summary"' in reply.text
    assert "Enter a number from 0 to 10." in reply.text
    assert not Response.objects.exists()


def test_number_questions_take_persian_digits_without_javascript(signed_in, participant, month1):
    participant.language = "fa"
    participant.save()
    page = signed_in.get(f"/p/s/{month1.pk}/followup/").text
    # A text field with a digits keyboard: a number field would empty itself on ۱۲.
    assert 'name="days_opioids" type="text" inputmode="numeric"' in page
    form = {**ANSWERS, "days_opioids": "\u06f1\u06f2", "craving": "\u0663"}
    reply = signed_in.post(f"/p/s/{month1.pk}/followup/", {**form, "client_id": str(uuid.uuid4())})
    assert reply.status_code == 302, reply.text
    answers = Response.objects.get().answers
    assert answers["days_opioids"] == 12 and answers["craving"] == 3


def test_number_questions_take_persian_digits_through_the_participant_api(signed_in, month1):
    reply = signed_in.post(
        api(month1, "submit"),
        {"client_id": str(uuid.uuid4()), "answers": {**ANSWERS, "days_alcohol": "\u06f4"}},
        content_type="application/json",
    )
    assert reply.status_code in (200, 201), reply.content
    assert Response.objects.get().answers["days_alcohol"] == 4


def test_a_comma_in_a_whole_number_is_refused_in_the_participants_language(
    signed_in, participant, month1
):
    participant.language = "es"
    participant.save()
    form = {**ANSWERS, "days_alcohol": "1,000", "client_id": str(uuid.uuid4())}
    reply = signed_in.post(f"/p/s/{month1.pk}/followup/", form)
    assert reply.status_code == 400
    assert "Escriba un número entero sin coma, por ejemplo 1500." in reply.text
    assert not Response.objects.exists()
    # The survey script has the same words, for the phone to say before sending.
    page = signed_in.get(f"/p/s/{month1.pk}/followup/").text
    data = json.loads(re.search(r'id="survey-data"[^>]*>(.*?)</script>', page, re.S).group(1))
    assert data["strings"]["whole_comma"] == "Escriba un número entero sin coma, por ejemplo 1500."
    assert "separador de miles" in data["strings"]["separators"]


def test_server_errors_are_in_the_participants_language(signed_in, participant, month1):
    participant.language = "es"
    participant.save()
    form = signed_in.post(
        f"/p/s/{month1.pk}/followup/", {"client_id": str(uuid.uuid4()), "craving": "11"}
    )
    assert form.status_code == 400
    assert "Escriba un número del 0 al 10." in form.text
    assert "Enter a number" not in form.text
    # The participant API (survey.js) answers in the language of the session: Spanish after
    # the participant switches to it on the phone.
    signed_in.post("/p/language", {"language": "es", "next": "/p/"})
    reply = signed_in.post(
        api(month1, "submit"),
        {"client_id": str(uuid.uuid4()), "answers": {"craving": 11}},
        content_type="application/json",
    )
    assert reply.status_code == 400
    assert reply.json()["errors"]["craving"] == ["Escriba un número del 0 al 10."]
    assert reply.json()["errors"]["attended_any"] == ["Esta pregunta necesita una respuesta."]


def test_the_participant_api_saves_a_draft_with_its_place_then_submits(signed_in, month1):
    client_id = str(uuid.uuid4())
    draft = signed_in.put(
        api(month1, "draft"),
        {"client_id": client_id, "answers": {"attended_any": 0}, "position": "home_group"},
        content_type="application/json",
    )
    assert draft.status_code == 200, draft.json()
    assert Response.objects.get().resume_at == "home_group"
    page = signed_in.get(f"/p/s/{month1.pk}/followup/").text
    assert '"position": "home_group"' in page and client_id in page
    sent = signed_in.post(
        api(month1, "submit"),
        {"client_id": client_id, "answers": ANSWERS},
        content_type="application/json",
    )
    assert sent.status_code == 201, sent.json()
    replay = signed_in.post(
        api(month1, "submit"),
        {"client_id": client_id, "answers": ANSWERS},
        content_type="application/json",
    )
    assert replay.status_code == 200 and Response.objects.count() == 1
    changed = signed_in.post(
        api(month1, "submit"),
        {"client_id": client_id, "answers": {**ANSWERS, "craving": 8}},
        content_type="application/json",
    )
    assert changed.status_code == 409 and changed.json()["code"] == "sent_before_changes"
    assert "were not saved" in changed.json()["detail"]
    assert Response.objects.get().answers["craving"] == ANSWERS["craving"]


def test_a_draft_left_at_the_review_reopens_at_the_review_with_its_answers(signed_in, month1):
    client_id = str(uuid.uuid4())
    draft = signed_in.put(
        api(month1, "draft"),
        {"client_id": client_id, "answers": ANSWERS, "position": "#review"},
        content_type="application/json",
    )
    assert draft.status_code == 200, draft.json()
    assert draft.json()["position"] == "#review"
    page = signed_in.get(f"/p/s/{month1.pk}/followup/").text
    # survey.js resumes at the review; without JavaScript the form shows the answers kept.
    assert '"position": "#review"' in page and '"review_position": "#review"' in page
    assert re.search(r'name="craving"[^>]* value="3"', page)
    # A position that is no question of the version (nor the review) still resumes at the start.
    signed_in.put(
        api(month1, "draft"),
        {"client_id": client_id, "answers": ANSWERS, "position": "#elsewhere"},
        content_type="application/json",
    )
    assert Response.objects.get().resume_at == ""


def test_the_participant_api_answers_404_for_another_participants_survey(signed_in, site_a, enrol):
    other = enrol(
        site=site_a, code="NYC-0043", enrolled_on=timezone.localdate() - timedelta(days=30)
    ).assignments.get(wave__slug="m1")
    reply = signed_in.put(
        api(other, "draft"),
        {"client_id": str(uuid.uuid4()), "answers": {}},
        content_type="application/json",
    )
    assert reply.status_code == 404
    assert not Response.objects.exists()


def test_the_participant_api_needs_a_participant_session_and_the_csrf_token(
    client, month1, participant
):
    body = {"client_id": str(uuid.uuid4()), "answers": ANSWERS}
    assert client.post(
        api(month1, "submit"), body, content_type="application/json"
    ).status_code in (
        401,
        403,
    )
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    _, token = participant_link_create(participant=participant)
    strict.get(f"/p/{token}")
    refused = strict.post(api(month1, "submit"), body, content_type="application/json")
    assert refused.status_code == 403
    assert not Response.objects.exists()


def test_an_overdose_answer_raises_one_alert_and_emails_the_team(
    signed_in, month1, django_capture_on_commit_callbacks
):
    client_id = str(uuid.uuid4())
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        for _ in range(2):  # saved twice: still one alert
            signed_in.put(
                api(month1, "draft"),
                {"client_id": client_id, "answers": {"overdose": 1}},
                content_type="application/json",
            )
    alert = SafetyAlert.objects.get()
    assert alert.variable == "overdose" and alert.answer == "1"
    assert len(callbacks) == 1
    assert safety_alert_email_send(alert_id=alert.pk)
    assert not safety_alert_email_send(alert_id=alert.pk)  # never twice
    (message,) = mail.outbox
    assert message.to == ["team@example.org"]
    assert "NYC-0042" in message.body
    assert "@" not in message.body.replace("team@example.org", "")  # no contact details


def test_the_top_craving_rating_shows_crisis_resources_after_a_no_javascript_submit(
    signed_in, month1
):
    form = {**ANSWERS, "craving": 10, "client_id": str(uuid.uuid4())}
    done = signed_in.post(f"/p/s/{month1.pk}/followup/", form, follow=True).text
    assert SafetyAlert.objects.get().variable == "craving"
    assert "555-0100" in done


def test_a_calm_survey_raises_no_alert(signed_in, month1):
    signed_in.post(f"/p/s/{month1.pk}/followup/", {**ANSWERS, "client_id": str(uuid.uuid4())})
    assert not SafetyAlert.objects.exists()


def test_the_sites_coordinator_opens_the_alert_from_the_email_and_records_follow_up(
    client, signed_in, month1, coordinator_a, researcher, staff_user, study, site_b
):
    signed_in.put(
        api(month1, "draft"),
        {"client_id": str(uuid.uuid4()), "answers": {"overdose": 1}},
        content_type="application/json",
    )
    alert = SafetyAlert.objects.get()
    page = f"/admin/surveys/safetyalert/{alert.pk}/change/"
    client.force_login(coordinator_a)
    assert client.get(page).status_code == 200
    saved = client.post(page, {"follow_up_note": "Called; safe, linked to the clinic."})
    assert saved.status_code == 302
    alert.refresh_from_db()
    assert alert.acknowledged_by == coordinator_a
    # Another site's coordinator and researchers do not see it.
    from surveys.models import StaffRole

    other = staff_user(
        study=study, role=StaffRole.Role.COORDINATOR, sites=[site_b], username="coord-b"
    )
    for user in (other, researcher):
        client.force_login(user)
        assert client.get(page).status_code in (302, 403, 404)

"""Erasing a withdrawn participant's answers at their request (issue 9): every response and
diary entry goes, the answer copied into a safety alert is blanked, exports carry on without
them, and it is audited."""

import io
import uuid

import pandas as pd
import pytest
from django.core.exceptions import ValidationError
from django.db import connection

from surveys.consent import participant_answers_erase
from surveys.exports import ExportSpec, dataset_export
from surveys.models import AuditEvent, DiaryEntry, Response, SafetyAlert, SubgroupAnswer
from surveys.services import participant_status_change
from tests.api.test_responses_api import ANSWERS
from tests.surveys.test_participant_survey import api, month1, participant, signed_in  # noqa: F401


@pytest.fixture
def answered(signed_in, month1, participant):  # noqa: F811
    body = {"client_id": str(uuid.uuid4()), "answers": {**ANSWERS, "overdose": 1}}
    assert (
        signed_in.post(api(month1, "submit"), body, content_type="application/json").status_code
        == 201
    )
    signed_in.post("/p/diary", {"fellowship": "1", "format": "inperson", "day": "today"})
    return participant


def test_a_withdrawn_participants_answers_are_erased_and_audited(answered, coordinator_a):
    study = answered.study
    before = pd.read_csv(
        io.StringIO(
            "".join(dataset_export(user=None, study=study, spec=ExportSpec(shape="long")).chunks)
        )
    )
    assert (before["craving"] == ANSWERS["craving"]).any()
    copy = SubgroupAnswer.objects.filter(participant=answered)  # the split's (PostgreSQL)
    assert copy.exists() == (connection.vendor == "postgresql")
    participant_status_change(participant=answered, status="withdrawn", reason="asked to leave")
    counts = participant_answers_erase(participant=answered, by=coordinator_a)
    assert counts["responses"] == 1 and counts["alert_answers"] == 1
    assert not Response.objects.filter(assignment__participant=answered).exists()
    assert not DiaryEntry.objects.filter(participant=answered).exists()
    assert not copy.exists()
    alert = SafetyAlert.objects.get(participant=answered)  # the alert and its handling stay
    assert alert.answer == ""
    event = AuditEvent.objects.get(action=AuditEvent.Action.ANSWERS_ERASE)
    assert event.participant == answered and event.username == coordinator_a.username
    after = pd.read_csv(
        io.StringIO(
            "".join(dataset_export(user=None, study=study, spec=ExportSpec(shape="long")).chunks)
        )
    )
    assert len(after) == len(before)  # the waves are still there…
    assert not (after["craving"] == ANSWERS["craving"]).any()  # …their answers not
    # Found by review: the completed survey's cells read -96 "shown but not answered", which
    # counts as item non-response; they say the answers were erased, -92. Their other waves
    # keep their codes (cancelled on withdrawal).
    completed = after[after["status"] == "completed"]
    assert len(completed) == 1
    assert completed["craving"].tolist() == [-92]
    assert completed["meetings_total"].tolist() == [-92]  # a derived measure too
    assert not (after[["craving", "meetings_total"]] == -96).any().any()
    assert set(after.loc[after["status"] == "cancelled", "craving"]) <= {-94}
    assert participant_answers_erase(participant=answered) == {}  # once only


def test_answers_of_a_participant_still_in_the_study_are_not_erased(answered):
    with pytest.raises(ValidationError) as excinfo:
        participant_answers_erase(participant=answered)
    assert "erase_answers" in excinfo.value.message_dict
    assert Response.objects.filter(assignment__participant=answered).exists()


def test_a_coordinator_erases_them_on_the_participant_page_when_withdrawing(
    client, answered, coordinator_a
):
    from django.urls import reverse

    from tests.scope_helpers import body_of, form_data

    page = reverse("admin:surveys_participant_change", args=[answered.pk])
    client.force_login(coordinator_a)
    data = form_data(body_of(client.get(page)), "participant_form")
    data["erase_answers"] = ["on"]
    refused = client.post(page, data)  # still active: refused, nothing erased
    assert refused.status_code == 200 and "only when the participant withdraws" in refused.text
    assert Response.objects.filter(assignment__participant=answered).exists()
    data.update(status=["withdrawn"], status_reason=["Asked us to delete everything"])
    assert client.post(page, data).status_code == 302
    assert not Response.objects.filter(assignment__participant=answered).exists()
    assert AuditEvent.objects.filter(action="answers_erase", participant=answered).exists()


def test_answer_values_staff_entered_are_blanked_in_the_audit_log(
    client,
    coordinator_a,
    month1,  # noqa: F811
    participant,  # noqa: F811
):
    """The audit log keeps the before and after of answers staff entered: erasing the
    participant's answers blanks those values; who changed which items, and when, stays."""
    from surveys.audit import ERASED_ANSWER

    client.force_login(coordinator_a)
    staff_api = f"/api/v1/assignments/{month1.pk}/responses/followup/submit/"
    body = {"client_id": str(uuid.uuid4()), "answers": {**ANSWERS, "craving": 8}}
    assert client.post(staff_api, body, content_type="application/json").status_code == 201
    (event,) = AuditEvent.objects.filter(action="response_change", participant=participant)
    assert event.details["changed"]["craving"] == {"before": None, "after": 8}
    names = set(event.details["changed"])
    other = AuditEvent.objects.create(  # another participant's event is not touched
        at=event.at, action="response_change", details=event.details, study=participant.study
    )
    participant_status_change(participant=participant, status="withdrawn", reason="asked")
    counts = participant_answers_erase(participant=participant, by=coordinator_a)
    assert counts["audit_answer_values"] == 1
    event.refresh_from_db()
    assert event.username == coordinator_a.username and event.details["submitted"] is True
    assert set(event.details["changed"]) == names  # which items were changed stays
    assert set(event.details["changed"].values()) == {ERASED_ANSWER}  # their values do not
    other.refresh_from_db()
    assert other.details["changed"]["craving"] == {"before": None, "after": 8}
    erased = AuditEvent.objects.get(action=AuditEvent.Action.ANSWERS_ERASE)
    assert erased.details["audit_answer_values"] == 1

"""The audit log is append-only: an event, once written, cannot be changed or deleted through
the model (``WrittenOnce``), and the admin offers a principal investigator — whose role holds
Django's change and delete permissions on audit events — no way to edit or delete one."""

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from surveys.audit import audit_log
from surveys.models import AuditEvent, StaffRole


@pytest.fixture
def pi(staff_user, study):
    return staff_user(study=study, role=StaffRole.Role.PRINCIPAL_INVESTIGATOR, username="pi")


@pytest.fixture
def event(study, pi):
    return audit_log(
        action=AuditEvent.Action.DATASET_EXPORT, user=pi, study=study, details={"rows": 12}
    )


def as_written(event) -> tuple:
    return (
        AuditEvent.objects.filter(pk=event.pk)
        .values_list("at", "username", "action", "object_id", "details")
        .get()
    )


def test_an_audit_event_cannot_be_changed_through_the_model(event):
    written = as_written(event)
    event.details = {"rows": 0}
    event.username = "someone-else"

    with pytest.raises(ValidationError, match="kept as written"):
        event.save()
    with pytest.raises(ValidationError, match="kept as written"):
        event.save(update_fields=["details"])
    fetched = AuditEvent.objects.get(pk=event.pk)
    fetched.action = AuditEvent.Action.LOGIN
    with pytest.raises(ValidationError, match="kept as written"):
        fetched.save()

    assert as_written(event) == written


def test_an_audit_event_cannot_be_deleted_through_the_model(event):
    with pytest.raises(ValidationError, match="kept as written"):
        event.delete()
    with pytest.raises(ValidationError, match="kept as written"):
        AuditEvent.objects.get(pk=event.pk).delete()

    assert AuditEvent.objects.filter(pk=event.pk).exists()


def test_a_new_audit_event_is_still_written(study, pi):
    # What WrittenOnce refuses is a second write, not the first.
    before = AuditEvent.objects.count()
    audit_log(action=AuditEvent.Action.AUDIT_EXPORT, user=pi, study=study)
    assert AuditEvent.objects.count() == before + 1


def test_the_admin_offers_a_pi_no_change_or_delete_of_audit_events(client, pi, event):
    assert pi.has_perm("surveys.change_auditevent") and pi.has_perm("surveys.delete_auditevent")
    client.force_login(pi)
    written = as_written(event)
    change = reverse("admin:surveys_auditevent_change", args=[event.pk])
    delete = reverse("admin:surveys_auditevent_delete", args=[event.pk])
    changelist = reverse("admin:surveys_auditevent_changelist")

    listed = client.get(changelist)
    assert listed.status_code == 200 and "Exported a dataset" in listed.text
    assert 'value="delete_selected"' not in listed.text  # no bulk delete among the actions
    assert delete not in listed.text

    page = client.get(change)
    assert page.status_code == 200  # shown, read-only
    assert 'name="_save"' not in page.text and 'name="_continue"' not in page.text
    assert delete not in page.text  # no "Delete" link

    posted = client.post(change, {"username": "someone-else", "details": "{}", "action": "login"})
    assert posted.status_code == 403
    assert client.get(delete).status_code == 403
    assert client.post(delete, {"post": "yes"}).status_code == 403
    bulk = client.post(
        changelist, {"action": "delete_selected", "_selected_action": [event.pk], "post": "yes"}
    )
    assert bulk.status_code in (200, 302)  # an unknown action is ignored, with a message
    assert client.get(reverse("admin:surveys_auditevent_add")).status_code == 403

    assert as_written(event) == written

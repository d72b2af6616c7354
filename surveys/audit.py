"""The audit log: one append-only row per sensitive act (who, when, what, from where)."""

from django.db.models import Model
from django.http import HttpRequest
from django.utils import timezone

from surveys.models import AuditEvent, Item, Participant, Response, Study
from surveys.ratelimit import client_ip
from surveys.selectors import identifier_variables


def audit_event_build(
    *,
    action: str,
    user=None,
    request: HttpRequest | None = None,
    study: Study | None = None,
    participant: Participant | None = None,
    obj: Model | None = None,
    details: dict | None = None,
) -> AuditEvent:
    """One event, not yet written (``audit_log`` writes it)."""
    if user is None and request is not None:
        user = request.user
    if user is not None and not user.is_authenticated:
        user = None
    if study is None and participant is not None:
        study = participant.study
    return AuditEvent(
        at=timezone.now(),
        user=user,
        username=user.get_username() if user is not None else "",
        action=action,
        study=study,
        participant=participant,
        object_type=obj._meta.label_lower if obj is not None else "",
        object_id=str(obj.pk) if obj is not None else "",
        details=details or {},
        ip=(client_ip(request) or None) if request is not None else None,
    )


def audit_log(
    *,
    action: str,
    user=None,
    request: HttpRequest | None = None,
    study: Study | None = None,
    participant: Participant | None = None,
    obj: Model | None = None,
    details: dict | None = None,
) -> AuditEvent:
    """Write one event. ``details`` holds codes, counts and field names, never an identifier."""
    event = audit_event_build(
        action=action,
        user=user,
        request=request,
        study=study,
        participant=participant,
        obj=obj,
        details=details,
    )
    event.save()
    return event


def phones_shown_audit(*, request: HttpRequest, rows, where: str) -> None:
    """One ``contact_view`` event per study whose participants' phone numbers a page or an
    API answer showed (``rows`` have ``participant`` and ``phone``): which participants (by
    study ID), never the numbers. A HEAD request is answered with headers only: nothing shown,
    nothing audited (as a background export's download)."""
    if request.method == "HEAD":
        return
    shown: dict[Study, list[str]] = {}
    for row in rows:
        if row.phone:
            shown.setdefault(row.participant.study, []).append(row.participant.code)
    for study, codes in shown.items():
        audit_log(
            action=AuditEvent.Action.CONTACT_VIEW,
            request=request,
            study=study,
            details={"where": where, "participants": sorted(set(codes))},
        )


HIDDEN_ANSWER = "(changed; identifying, free text or a date: not kept here)"
# What an answer's before and after become in the log when the participant's answers are
# erased at their request (``surveys.consent.participant_answers_erase``).
ERASED_ANSWER = "(changed; erased at the participant's request)"
# Kinds whose values can identify someone whatever the item (a name typed in, a date of birth,
# a day of an overdose, a value calculated from them): named in the audit log, never copied.
PRIVATE_KINDS = (Item.Kind.TEXT, Item.Kind.NOTES, Item.Kind.DATE, Item.Kind.CALC)


# Per process: the variables of an instrument whose values never go into the log, keyed by the
# instrument and its current version's stamp (see private_variables).
_PRIVATE_CACHE: dict[tuple, frozenset[str]] = {}


def private_variables(*, instrument_id: int, stamp: tuple) -> frozenset[str]:
    """The instrument's variables that are identifiers (``selectors.identifier_variables``)
    or of ``PRIVATE_KINDS`` in any of its versions: a variable marked identifying in a later
    version stays hidden in the answers of a draft still on an earlier one. Cached under
    ``stamp``, the current version's (id, number, item count, highest item id) as the submit
    services read it with the lock: a version with responses is never edited in place, and
    any edit makes a new current version or recreates its items, which changes the stamp."""
    key = (instrument_id, *stamp)
    found = _PRIVATE_CACHE.get(key)
    if found is None:
        identifiers = identifier_variables(instrument_id=instrument_id)
        found = identifiers.get(instrument_id, frozenset()) | frozenset(
            Item.objects.filter(
                version__instrument_id=instrument_id, kind__in=PRIVATE_KINDS
            ).values_list("variable", flat=True)
        )
        if len(_PRIVATE_CACHE) > 256:
            _PRIVATE_CACHE.clear()
        _PRIVATE_CACHE[key] = found
    return found


def private_variables_forget() -> None:
    """Called when an instrument's items change (the stamp would tell; this frees the memory)."""
    _PRIVATE_CACHE.clear()


def answers_change_event(
    *,
    request: HttpRequest,
    response: Response,
    before: dict,
    submitted: bool,
    private: frozenset[str],
    participant_id: int,
    study_id: int,
) -> AuditEvent | None:
    """A ``response_change`` event, not yet written, for answers staff entered or changed: each
    changed item's value before and after; ``private`` variables (``private_variables``:
    identifier items and ``PRIVATE_KINDS``) only by name (their values would make the
    append-only log identifying, and identifier erasure does not reach it). Erasing the
    participant's answers blanks the values (``answer_values_erase``). None when nothing
    changed and nothing was submitted.

    Built by the submit services, in their transaction, from what they read under the
    assignment's lock: no query (but, once per version, the private variables). They write it
    with the response: in the same statement when they insert one (``object_id`` is then the
    new response's), else right after."""
    after = response.answers or {}
    changed = {}
    for name in sorted(set(before) | set(after)):
        if before.get(name) != after.get(name):
            changed[name] = (
                HIDDEN_ANSWER
                if name in private
                else {"before": before.get(name), "after": after.get(name)}
            )
    if not changed and not submitted:
        return None
    return audit_event_build(
        action=AuditEvent.Action.RESPONSE_CHANGE,
        request=request,
        study=Study(pk=study_id),
        participant=Participant(pk=participant_id, study_id=study_id),
        obj=response,
        details={"submitted": submitted, "changed": changed},
    )


def answer_values_erase(participant: Participant) -> int:
    """Blank the answer values in the participant's ``response_change`` events (each item's
    before and after becomes ``ERASED_ANSWER``; who changed which items when stays). The one
    change ever made to the log, for an erasure of the participant's answers at their request.
    Returns how many events it changed."""
    changed_events = 0
    events = AuditEvent.objects.filter(
        participant=participant, action=AuditEvent.Action.RESPONSE_CHANGE
    ).only("pk", "details")
    for event in events:
        changed = event.details.get("changed") or {}
        blanked = {
            name: value if value == HIDDEN_ANSWER else ERASED_ANSWER
            for name, value in changed.items()
        }
        if blanked != changed:
            # a queryset's update: AuditEvent.save refuses to change a written event
            AuditEvent.objects.filter(pk=event.pk).update(
                details={**event.details, "changed": blanked}
            )
            changed_events += 1
    return changed_events


# --- Sign-ins (connected in SurveysConfig.ready) ---------------------------------------------


def _signed_in(sender, request, user, **kwargs) -> None:
    audit_log(action=AuditEvent.Action.LOGIN, user=user, request=request)


def _signed_out(sender, request, user, **kwargs) -> None:
    if user is not None:
        expired = getattr(request, "session_expired", "") if request is not None else ""
        details = {"expired": expired} if expired else None  # signed out by the session's end
        audit_log(action=AuditEvent.Action.LOGOUT, user=user, request=request, details=details)


def _sign_in_failed(sender, credentials, request=None, **kwargs) -> None:
    """The account tried, when it exists; a name that matches no account is not kept (it may be
    a password typed into the wrong box), only that there was one."""
    from django.contrib.auth import get_user_model

    from surveys.signin import signin_failure_record, signin_locked

    User = get_user_model()
    typed = str(credentials.get(User.USERNAME_FIELD, "") or "")[:150]
    user = User._default_manager.filter(**{User.USERNAME_FIELD: typed}).first() if typed else None
    ip = client_ip(request) if request is not None else ""
    details = {} if user is not None else {"unknown_account": True}
    if signin_locked(username=typed, ip=ip):
        details["locked"] = True  # refused without the password being tried
    signin_failure_record(username=typed, ip=ip)
    event = AuditEvent(
        at=timezone.now(),
        user=user,
        username=user.get_username() if user is not None else "",
        action=AuditEvent.Action.LOGIN_FAILED,
        details=details,
        ip=ip or None,
    )
    event.save()


def sign_in_auditing_connect() -> None:
    from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed

    user_logged_in.connect(_signed_in, dispatch_uid="surveys.audit.signed_in")
    user_logged_out.connect(_signed_out, dispatch_uid="surveys.audit.signed_out")
    user_login_failed.connect(_sign_in_failed, dispatch_uid="surveys.audit.sign_in_failed")
    from surveys.signin import session_started

    user_logged_in.connect(session_started, dispatch_uid="surveys.signin.session_started")

"""Two-factor sign-in for staff: a code from an authenticator app (``surveys.totp``) as well as
the password. Optional for everyone; required for the principal investigators of a study that
says so (``Study.pi_two_factor_required``): until they turn it on, every admin page sends them
to the page that does it (``TwoFactorRequiredMiddleware``)."""

from django.contrib.auth import get_user_model, logout
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import Exists, OuterRef
from django.http import HttpRequest
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import timezone
from rest_framework.permissions import BasePermission

from surveys import prepared, totp
from surveys.audit import audit_log
from surveys.models import AuditEvent, StaffRole, StaffTwoFactor

ISSUER = "Recovery study"


def two_factor_on(user) -> StaffTwoFactor | None:
    return StaffTwoFactor.objects.filter(user=user, confirmed_at__isnull=False).first()


def two_factor_verify(*, user, code: str) -> bool | None:
    """None when the user has not turned two-factor sign-in on (nothing to check); else whether
    ``code`` is a current code not used before (using it)."""
    device = two_factor_on(user)
    if device is None:
        return None
    step = totp.verify(device.secret, code, last_step=device.last_step)
    if step is None:
        return False
    # Only one sign-in can use a step: the update is conditional on the step stored.
    return bool(
        StaffTwoFactor.objects.filter(pk=device.pk, last_step__lt=step).update(last_step=step)
    )


def two_factor_required(user) -> bool:
    """The user leads a study whose principal investigators must use two-factor sign-in."""
    return two_factor_state(user)[1]


# Where a request keeps its user's two-factor state once read (see two_factor_state); and where
# a user loaded with it (user_with_two_factor_state) carries it.
_STATE_ATTRIBUTE = "_two_factor_state"


def two_factor_state(user, request: HttpRequest | None = None) -> tuple[bool, bool]:
    """Whether the user has two-factor sign-in on, and whether a study they lead requires it:
    read with the user when a session's user is loaded (``user_with_two_factor_state``), else
    one query, kept on ``request`` so that the middleware and the API's permission, which both
    ask on every staff request, read it once."""
    loaded = getattr(user, _STATE_ATTRIBUTE, None)
    if loaded is not None:
        return loaded
    state = getattr(request, _STATE_ATTRIBUTE, None)
    if state is not None and state[0] == user.pk:
        return state[1]
    row = (
        get_user_model()
        ._default_manager.filter(pk=user.pk)
        .annotate(
            on=Exists(
                StaffTwoFactor.objects.filter(user=OuterRef("pk"), confirmed_at__isnull=False)
            ),
            required=Exists(
                StaffRole.objects.filter(
                    user=OuterRef("pk"),
                    role=StaffRole.Role.PRINCIPAL_INVESTIGATOR,
                    study__pi_two_factor_required=True,
                )
            ),
        )
        .values_list("on", "required")
        .first()
    )
    result = (bool(row[0]), bool(row[1])) if row else (False, False)
    if request is not None:
        setattr(request, _STATE_ATTRIBUTE, (user.pk, result))
    return result


def _user_sql() -> str:
    user_model = get_user_model()
    columns = ", ".join(f"u.{field.column}" for field in user_model._meta.concrete_fields)
    return (
        f"SELECT {columns}, "  # noqa: S608 - the user model's own columns and table
        "EXISTS (SELECT 1 FROM surveys_stafftwofactor t "
        "WHERE t.user_id = u.id AND t.confirmed_at IS NOT NULL) AS two_factor_on_, "
        "EXISTS (SELECT 1 FROM surveys_staffrole r JOIN surveys_study s ON s.id = r.study_id "
        "WHERE r.user_id = u.id AND r.role = %s AND s.pi_two_factor_required) "
        "AS two_factor_required_ "
        f"FROM {user_model._meta.db_table} u WHERE u.{user_model._meta.pk.column} = %s"
    )


def user_with_two_factor_state(user_id):
    """The user, or None, with their two-factor state (``two_factor_state``) read in the same
    statement, prepared: the authentication backend loads every signed-in request's user so
    (``LockoutModelBackend.get_user``), where the middleware and the API then ask for the state
    (a query and its planning fewer on every staff request; benchmarks/README.md). The state
    is as it was at the load, for the rest of the request."""
    user_model = get_user_model()
    try:
        user_id = user_model._meta.pk.to_python(user_id)
    except ValidationError:
        return None
    with connection.cursor() as cursor:
        sql = prepared.statement(cursor, "surveys_user_two_factor", _user_sql(), 2)
    found = list(
        user_model._default_manager.raw(sql, [StaffRole.Role.PRINCIPAL_INVESTIGATOR, user_id])
    )
    if not found:
        return None
    user = found[0]
    state = (bool(user.two_factor_on_), bool(user.two_factor_required_))
    del user.two_factor_on_, user.two_factor_required_
    setattr(user, _STATE_ATTRIBUTE, state)
    return user


def two_factor_start(*, user, fresh: bool = False) -> StaffTwoFactor:
    """The user's authenticator set-up, not yet confirmed. ``fresh``: with a new secret (each
    time the set-up page is shown, so that a key seen earlier, over a shoulder or in a stolen
    session, is not the one confirmed later)."""
    device = StaffTwoFactor.objects.filter(user=user, confirmed_at__isnull=True).first()
    if device is None:
        try:
            with transaction.atomic():
                return StaffTwoFactor.objects.create(
                    user=user, secret=totp.secret_new(), created_at=timezone.now()
                )
        except IntegrityError:  # made at the same moment (two tabs), or already confirmed
            device = StaffTwoFactor.objects.get(user=user)
    if fresh and device.confirmed_at is None:
        device.secret = totp.secret_new()
        device.save(update_fields=["secret"])
    return device


def two_factor_confirm(*, user, code: str, request: HttpRequest | None = None) -> bool:
    """Turn two-factor sign-in on with the app's first code; audited."""
    device = StaffTwoFactor.objects.filter(user=user, confirmed_at__isnull=True).first()
    if device is None:
        return False
    step = totp.verify(device.secret, code)
    if step is None:
        return False
    device.confirmed_at, device.last_step = timezone.now(), step
    device.save(update_fields=["confirmed_at", "last_step"])
    audit_log(action=AuditEvent.Action.TWO_FACTOR_ON, user=user, request=request)
    return True


def provisioning_uri(device: StaffTwoFactor) -> str:
    return totp.provisioning_uri(device.secret, account=device.user.get_username(), issuer=ISSUER)


# Pages a principal investigator without two-factor sign-in may still open.
_OPEN = ("/admin/two-factor/", "/admin/logout/", "/admin/login/", "/admin/jsi18n/")
# In the session of a sign-in that passed the code (or turned two-factor on).
SESSION_PASSED = "two_factor_passed"


def session_passed(request: HttpRequest) -> None:
    request.session[SESSION_PASSED] = True


class TwoFactorRequiredMiddleware:
    """Two rules for signed-in staff, on the admin and the API:

    - a session opened with the password alone, for a user who has two-factor sign-in on (it
      was turned on since, in another browser), ends: signed out (audited, with the reason),
      the next page asks for the password and the code;
    - a principal investigator of a study that requires two-factor sign-in, signed in without
      it, is sent from every admin page to the page that turns it on."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        path = request.path_info
        if (
            path.startswith(("/admin/", "/api/"))
            and user is not None
            and user.is_authenticated
            and user.is_staff
            and not request.session.get(SESSION_PASSED)
        ):
            on, required = two_factor_state(user, request)
            if on:
                request.session_expired = "two-factor sign-in turned on"
                logout(request)
            elif required and path.startswith("/admin/") and not path.startswith(_OPEN):
                return redirect(reverse("two-factor-setup"))
        return self.get_response(request)


class TwoFactorInForce(BasePermission):
    """The API's side of the same rule (DEFAULT_PERMISSION_CLASSES): a principal investigator
    who must use two-factor sign-in and has not turned it on gets 403 from every staff
    endpoint, whether signed in in the browser or with an API token made before."""

    message = "A study you lead requires two-factor sign-in: turn it on first (/admin/two-factor/)."

    def has_permission(self, request, view) -> bool:
        user = request.user
        if not (user and user.is_authenticated and user.is_staff):
            return True
        # The state the middleware read for this request, if it did (a session's).
        on, required = two_factor_state(user, request._request)
        return on or not required

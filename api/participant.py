"""The participant's own API, used by the phone pages (``survey.js`` and the service worker):
the staff endpoints' draft and submit, authenticated by the participant session a personal
link starts (never a staff login) and scoped to that participant's own assignments; anything
else answers 404.
"""

from dataclasses import dataclass

from django.contrib.auth.models import AnonymousUser
from django.http import Http404
from django.utils import translation
from django.utils.translation import gettext as _
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework.authentication import SessionAuthentication
from rest_framework.exceptions import NotAuthenticated
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from api.views import ResponseDraftSaveApi, ResponseSubmitApi
from surveys.models import Participant
from surveys.participant_views import EPOCH_KEY, LANGUAGE_KEY, SESSION_KEY
from surveys.selectors import PARTICIPANT_ENTRY_CONDITIONS


@dataclass(frozen=True)
class ParticipantSession:
    participant_id: int
    access_epoch: int  # checked with the lock, in the same statement (ParticipantEntryGate)


class ParticipantSessionAuthentication(SessionAuthentication):
    """``request.auth`` is the session's ParticipantSession; CSRF is enforced as for staff."""

    def authenticate(self, request: Request):
        session = request._request.session
        participant_id = session.get(SESSION_KEY)
        if not participant_id:
            return None
        self.enforce_csrf(request)
        return (
            AnonymousUser(),
            ParticipantSession(int(participant_id), session.get(EPOCH_KEY, -1)),
        )

    def authenticate_header(self, request: Request) -> str:
        return "ParticipantSession"


class ParticipantSessionScheme(OpenApiAuthenticationExtension):
    target_class = ParticipantSessionAuthentication
    name = "participantSession"

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "cookie", "name": "sessionid"}


class IsParticipant(BasePermission):
    def has_permission(self, request, view) -> bool:
        if request.auth is None:
            raise NotAuthenticated(_("Open your personal link first."))
        return True


class ParticipantScope:
    authentication_classes = [ParticipantSessionAuthentication]
    permission_classes = [IsParticipant]
    audit_entries = False  # their own answers: the response is the record

    def dispatch(self, request, *args, **kwargs):
        # Error messages in the participant's language (kept in the session by the pages).
        language = request.session.get(LANGUAGE_KEY) or "en"
        with translation.override(language):
            return super().dispatch(request, *args, **kwargs)

    def gate(self, request: Request):
        return ParticipantEntryGate(request.auth)


class ParticipantEntryGate:
    """The survey is this participant's, they are active and have consented, the session
    started after their last PIN change or revocation (the conditions of the statement that
    locks the assignment: no one else's is locked), and the instrument is one of the wave's.
    Else 404 whatever the reason: a guessed or another participant's URL learns nothing."""

    name = "participant"
    columns = ""
    params = ()
    where = PARTICIPANT_ENTRY_CONDITIONS

    def __init__(self, session: ParticipantSession):
        self.where_params = (
            session.participant_id,
            Participant.Status.ACTIVE,
            session.access_epoch,
        )

    def check(self, values, *, instrument_found: bool, instrument_in_wave: bool) -> None:
        if values is None or not instrument_in_wave:
            raise Http404(_("No such survey."))


class ParticipantDraftSaveApi(ParticipantScope, ResponseDraftSaveApi):
    """Save the participant's answers so far and where they are."""


class ParticipantSubmitApi(ParticipantScope, ResponseSubmitApi):
    """Send the participant's final answers; a replay (an offline phone sending again)
    answers 200 with the response stored the first time."""

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
from surveys.models import Assignment
from surveys.participant_views import EPOCH_KEY, LANGUAGE_KEY, SESSION_KEY
from surveys.selectors import participant_entry_scope


@dataclass(frozen=True)
class ParticipantSession:
    participant_id: int
    access_epoch: int  # checked with the scope, in the same query (see ParticipantScope)


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

    def scope(self, request: Request, assignment_id: int, instrument_slug: str):
        # One query: the survey is this participant's, they are active, and the session
        # started after their last PIN change or revocation.
        scope = participant_entry_scope(
            participant_id=request.auth.participant_id,
            access_epoch=request.auth.access_epoch,
            assignment_id=assignment_id,
            instrument_slug=instrument_slug,
        )
        if scope is None:  # whatever the reason: a guessed URL learns nothing
            raise Http404(_("No such survey."))
        return Assignment(pk=scope.assignment_id), scope.instrument


class ParticipantDraftSaveApi(ParticipantScope, ResponseDraftSaveApi):
    """Save the participant's answers so far and where they are."""


class ParticipantSubmitApi(ParticipantScope, ResponseSubmitApi):
    """Send the participant's final answers; a replay (an offline phone sending again)
    answers 200 with the response stored the first time."""

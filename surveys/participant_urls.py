from django.urls import path

from surveys import participant_access, participant_consent, participant_views, unsubscribe
from surveys.participant_diary import diary_delete, diary_log

urlpatterns = [
    path("", participant_views.home, name="participant-home"),
    path("language", participant_views.language_set, name="participant-language"),
    path("manifest.webmanifest", participant_views.manifest, name="participant-manifest"),
    path("sw.js", participant_views.service_worker, name="participant-sw"),
    path(
        "s/<id:assignment_id>/<slug:slug>/",
        participant_views.survey,
        name="participant-survey",
    ),
    path(
        "s/<id:assignment_id>/<slug:slug>/done",
        participant_views.survey_done,
        name="participant-survey-done",
    ),
    path("consent", participant_consent.consent, name="participant-consent"),
    path("consent/copy", participant_consent.consent_copy, name="participant-consent-copy"),
    path("new-link", participant_access.new_link, name="participant-new-link"),
    path("unlock", participant_access.unlock, name="participant-unlock"),
    path("pin", participant_access.pin, name="participant-pin"),
    path("sign-out", participant_access.sign_out, name="participant-sign-out"),
    path("diary", diary_log, name="participant-diary"),
    path("diary/<id:entry_id>/delete", diary_delete, name="participant-diary-delete"),
    path("unsubscribe/<str:token>", unsubscribe.unsubscribe, name="participant-unsubscribe"),
    # Last: anything else after /p/ is a token.
    path("<str:token>", participant_views.link_open, name="participant-link"),
]

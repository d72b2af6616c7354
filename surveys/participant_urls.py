from django.urls import path

from surveys import participant_views

urlpatterns = [
    path("", participant_views.home, name="participant-home"),
    path("language", participant_views.language_set, name="participant-language"),
    path("manifest.webmanifest", participant_views.manifest, name="participant-manifest"),
    path("sw.js", participant_views.service_worker, name="participant-sw"),
    path(
        "s/<int:assignment_id>/<slug:slug>/",
        participant_views.survey,
        name="participant-survey",
    ),
    path(
        "s/<int:assignment_id>/<slug:slug>/done",
        participant_views.survey_done,
        name="participant-survey-done",
    ),
    # Last: anything else after /p/ is a token.
    path("<str:token>", participant_views.link_open, name="participant-link"),
]

from django.urls import path

from surveys import participant_views

urlpatterns = [
    path("", participant_views.home, name="participant-home"),
    path("<str:token>", participant_views.link_open, name="participant-link"),
]

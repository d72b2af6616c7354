from django.urls import path
from drf_spectacular.views import SpectacularAPIView
from rest_framework.permissions import AllowAny

from api.docs import ApiDocsView
from api.participant import ParticipantDraftSaveApi, ParticipantSubmitApi
from api.staff import (
    CallListApi,
    DatasetExportApi,
    DatasetExportJobDetailApi,
    DatasetExportJobDownloadApi,
    ParticipantEnrolApi,
    RetentionSummaryApi,
)
from api.views import DictionaryApi, ResponseDraftSaveApi, ResponseSubmitApi, StudyListApi

app_name = "api"

urlpatterns = [
    # The schema describes the API's shape, not data, so it is public like its docs page.
    path("schema/", SpectacularAPIView.as_view(permission_classes=[AllowAny]), name="schema"),
    path(
        "docs/",
        # The split view serves its start-up script as a file (?script): no inline script, so
        # the Content-Security-Policy needs no exception for it.
        ApiDocsView.as_view(url_name="api:schema", permission_classes=[AllowAny]),
        name="docs",
    ),
    path("studies/", StudyListApi.as_view(), name="study-list"),
    path("studies/<slug:study_slug>/dictionary/", DictionaryApi.as_view(), name="dictionary"),
    path(
        "studies/<slug:study_slug>/participants/",
        ParticipantEnrolApi.as_view(),
        name="participant-enrol",
    ),
    path(
        "studies/<slug:study_slug>/retention/",
        RetentionSummaryApi.as_view(),
        name="retention-summary",
    ),
    path(
        "studies/<slug:study_slug>/export/",
        DatasetExportApi.as_view(),
        name="dataset-export",
    ),
    path("export-jobs/<id:job_id>/", DatasetExportJobDetailApi.as_view(), name="export-job"),
    path(
        "export-jobs/<id:job_id>/download/",
        DatasetExportJobDownloadApi.as_view(),
        name="export-job-download",
    ),
    path("call-list/", CallListApi.as_view(), name="call-list"),
    path(
        "assignments/<id:assignment_id>/responses/<slug:instrument_slug>/draft/",
        ResponseDraftSaveApi.as_view(),
        name="response-draft",
    ),
    path(
        "assignments/<id:assignment_id>/responses/<slug:instrument_slug>/submit/",
        ResponseSubmitApi.as_view(),
        name="response-submit",
    ),
    path(
        "participant/assignments/<id:assignment_id>/responses/<slug:instrument_slug>/draft/",
        ParticipantDraftSaveApi.as_view(),
        name="participant-response-draft",
    ),
    path(
        "participant/assignments/<id:assignment_id>/responses/<slug:instrument_slug>/submit/",
        ParticipantSubmitApi.as_view(),
        name="participant-response-submit",
    ),
]

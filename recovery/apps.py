from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class StudyAdminConfig(admin_apps.AdminConfig):
    """``django.contrib.admin``, with ``recovery.admin_site.StudyAdminSite`` as ``admin.site``."""

    default = False  # RecoveryConfig is this app's
    default_site = "recovery.admin_site.StudyAdminSite"


class RecoveryConfig(AppConfig):
    name = "recovery"
    verbose_name = "Recovery research"

    def ready(self) -> None:
        from recovery import checks  # noqa: F401  (registers the system checks)
        from recovery.diary import register_diary_choices
        from recovery.measures import register_measures
        from recovery.retention import register_retention_subgroups

        register_measures()
        register_diary_choices()
        register_retention_subgroups()

        from surveys.study_links import StudyLink, register_study_link

        register_study_link(
            StudyLink(
                label="Analyses",
                url_name="admin:recovery_analysisrun_study",
                note="involvement versus outcomes: matched, lagged and trajectory estimates",
            )
        )

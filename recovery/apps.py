from django.apps import AppConfig


class RecoveryConfig(AppConfig):
    name = "recovery"
    verbose_name = "Recovery research"

    def ready(self) -> None:
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

from django.apps import AppConfig


class RecoveryConfig(AppConfig):
    name = "recovery"
    verbose_name = "Recovery research"

    def ready(self) -> None:
        from recovery.measures import register_measures

        register_measures()

from django.apps import AppConfig
from django.db.models.signals import post_migrate


class SurveysConfig(AppConfig):
    name = "surveys"
    verbose_name = "Surveys"

    def ready(self) -> None:
        from recovery.converters import converters_register

        converters_register()  # before any URL configuration is read

        from surveys.audit import sign_in_auditing_connect
        from surveys.roles import role_groups_ensure
        from surveys.subgroup_copy import subgroup_copy_sync

        post_migrate.connect(role_groups_ensure, sender=self)
        # Runs after every app's ready(), so the subgroup registry is complete.
        post_migrate.connect(subgroup_copy_sync, sender=self)
        sign_in_auditing_connect()

        from django.contrib import admin

        from surveys.signin import LockoutAuthenticationForm

        admin.site.login_form = LockoutAuthenticationForm

        from surveys.fingerprint import software_fingerprint

        software_fingerprint()  # of the code as loaded now, not as a later deploy leaves it

import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from recovery.demo import demo_participant_link
from surveys.models import StaffRole, Study
from surveys.services import staff_role_assign


class Command(BaseCommand):
    help = "Create (or reset) the demo staff login and print it with the admin URL."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="demo")
        parser.add_argument("--study", default="demo")
        parser.add_argument("--url", default="http://127.0.0.1:8000")

    def handle(self, *args, username, study, url, **options):
        study_obj = Study.objects.filter(slug=study).first()
        if study_obj is None:
            raise CommandError(f"No study '{study}'; run seed_demo first.")
        site = study_obj.sites.order_by("code").first()
        logins = [
            (username, "superuser, principal investigator", StaffRole.Role.PRINCIPAL_INVESTIGATOR),
            (
                f"{username}-coordinator",
                f"coordinator of site {site.code}: enrols, calls, sees contact details",
                StaffRole.Role.COORDINATOR,
            ),
            (
                f"{username}-researcher",
                "researcher: every site, de-identified data only",
                StaffRole.Role.RESEARCHER,
            ),
        ]
        self.stdout.write(self.style.SUCCESS(f"Demo staff logins at {url}/admin/:"))
        for name, description, role in logins:
            password = secrets.token_urlsafe(12)
            user, _ = get_user_model().objects.get_or_create(username=name)
            user.is_staff = True
            user.is_superuser = role == StaffRole.Role.PRINCIPAL_INVESTIGATOR
            user.set_password(password)
            user.save()
            sites = [site] if role == StaffRole.Role.COORDINATOR else []
            staff_role_assign(user=user, study=study_obj, role=role, sites=sites)
            self.stdout.write(f"  {name:<24} password {password}   ({description})")
        self.stdout.write(f"  health:   {url}/healthz")
        found = demo_participant_link(study=study_obj)
        if found is not None:
            participant, link = found
            link = link.replace(settings.SITE_URL, url, 1)
            self.stdout.write(f"  a participant's personal link ({participant.code}): {link}")

from django.core.management.base import BaseCommand, CommandError

from surveys.links import participant_link_create, participant_link_url
from surveys.models import Participant


class Command(BaseCommand):
    help = "Make a new personal link for a participant and print it (the token is not stored)."

    def add_arguments(self, parser):
        parser.add_argument("--study", required=True, help="The study's slug.")
        parser.add_argument("--participant", required=True, help="The participant's study ID.")
        parser.add_argument("--days", type=int, default=None, help="Days the link works.")

    def handle(self, *args, study, participant, days, **options):
        found = Participant.objects.filter(study__slug=study, code=participant).first()
        if found is None:
            raise CommandError(f"No participant {participant!r} in study {study!r}.")
        if found.status != Participant.Status.ACTIVE:
            raise CommandError(
                f"{participant} is {found.get_status_display().lower()}; "
                "links only work for active participants."
            )
        if days is not None and days < 1:
            raise CommandError("--days must be at least 1.")
        link, token = participant_link_create(participant=found, days=days)
        self.stdout.write(participant_link_url(token))
        self.stderr.write(f"Works until {link.expires_at:%Y-%m-%d %H:%M} UTC.")

"""Recompute the keyed digests of every contact row (after CONTACT_LOOKUP_KEY changes)."""

from django.core.management.base import BaseCommand
from django.db import transaction

from surveys.models import ParticipantContact

BATCH = 2000


class Command(BaseCommand):
    help = (
        "Recompute the e-mail and phone digests that 'send me a new link' searches, under the "
        "current CONTACT_LOOKUP_KEY. Run it after changing that key."
    )

    def handle(self, *args, **options):
        done = 0
        with transaction.atomic():
            batch = []
            for contact in ParticipantContact.objects.only("pk", "email", "phone").iterator(BATCH):
                contact.lookups_refresh()
                batch.append(contact)
                if len(batch) == BATCH:
                    ParticipantContact.objects.bulk_update(batch, ["email_lookup", "phone_lookup"])
                    done += len(batch)
                    batch = []
            ParticipantContact.objects.bulk_update(batch, ["email_lookup", "phone_lookup"])
            done += len(batch)
        self.stdout.write(f"Recomputed the digests of {done} contact row(s).")

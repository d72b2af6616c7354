"""One reminder dispatch cycle: the same service the beat entry runs every minute."""

from django.core.management.base import BaseCommand, CommandError

from surveys.dispatch import STALE_AFTER, reminders_dispatch, reminders_dry_run


class Command(BaseCommand):
    help = (
        "Cancel messages that must not go, sweep interrupted sends, claim the due messages and "
        "queue them for the worker. --dry-run lists what would be sent and changes nothing."
    )

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true")

    def handle(self, *args, dry_run, **options):
        if dry_run:
            due = reminders_dry_run()
            for message in due:
                self.stdout.write(
                    f"{message.scheduled_at:%Y-%m-%d %H:%M} UTC"
                    f"  {message.get_channel_display():<20}  #{message.sequence}"
                    f"  {message.assignment.participant.code}"
                    f"  {message.assignment.wave.name}"
                    f"  {message.would}" + (f": {message.would_note}" if message.would_note else "")
                )
            going = sum(message.would == "send" for message in due)
            self.stdout.write(f"{len(due)} message(s) due; {going} would be sent now.")
            return
        result = reminders_dispatch()
        self.stdout.write(
            f"claimed {result.claimed} in {result.batches} batch(es); cancelled "
            f"{result.cancelled}; requeued {result.requeued}; to review {result.to_review}; "
            f"not queued {result.not_queued}"
        )
        if result.not_queued:  # exit status 1, for whoever runs it from a script or cron
            raise CommandError(
                f"{result.not_queued} claimed message(s) could not be queued: the broker is "
                "unreachable. None was sent; the sweep queues them again "
                f"{STALE_AFTER.total_seconds() / 60:.0f} minutes after their claim, once the "
                "broker is back."
            )

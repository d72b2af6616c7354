from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from surveys.exports import DATES, FORMATS, SHAPES, ExportSpec, dataset_export
from surveys.models import Study


class Command(BaseCommand):
    help = (
        "Write a study's de-identified dataset (pseudonymous IDs, no identifiers or free text, "
        "days since enrolment) to a file; audited like the admin's export."
    )

    def add_arguments(self, parser):
        parser.add_argument("--study", required=True, help="The study's slug.")
        parser.add_argument("--shape", choices=SHAPES, default="long")
        parser.add_argument("--format", choices=FORMATS, default="csv")
        parser.add_argument("--out", required=True, help="The file to write.")
        parser.add_argument("--labels", action="store_true", help="Value labels, not codes.")
        parser.add_argument("--site", action="append", default=[], help="A site code (repeat).")
        parser.add_argument("--wave", action="append", default=[], help="A wave slug (repeat).")
        parser.add_argument(
            "--instrument", action="append", default=[], help="An instrument slug (repeat)."
        )
        parser.add_argument(
            "--dates",
            choices=DATES,
            default="days",
            help="days: days since enrolment only; shifted: also calendar dates, each "
            "participant's moved back by a keyed offset of 0-364 days.",
        )

    def handle(
        self, *args, study, shape, format, out, labels, site, wave, instrument, dates, **options
    ):
        found = Study.objects.filter(slug=study).first()
        if found is None:
            raise CommandError(f"No study '{study}'.")
        spec = ExportSpec(
            shape=shape,
            format=format,
            labels=labels,
            sites=tuple(site),
            waves=tuple(wave),
            instruments=tuple(instrument),
            dates=dates,
        )
        try:
            export = dataset_export(user=None, study=found, spec=spec)
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from exc
        path = Path(out)
        with path.open("wb") as handle:
            for chunk in export.chunks:
                handle.write(chunk.encode() if isinstance(chunk, str) else chunk)
        self.stdout.write(self.style.SUCCESS(f"Wrote {export.rows} rows to {path}."))

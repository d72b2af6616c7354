import csv
import io
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from surveys.dictionary import dictionary_export
from surveys.models import Language, Study


class Command(BaseCommand):
    help = "Export a study's instruments (their current versions) as a REDCap data dictionary CSV."

    def add_arguments(self, parser):
        parser.add_argument("--study", required=True, help="Slug of the study.")
        parser.add_argument("--out", required=True, help="File to write, or - for standard output.")
        parser.add_argument(
            "--language",
            choices=Language.values,
            default=None,
            help="Language of the texts (default: the study's; English where one is missing).",
        )

    def handle(self, *args, study, out, language, **options):
        source = Study.objects.filter(slug=study).first()
        if source is None:
            raise CommandError(f"There is no study with the slug {study!r}.")
        text = dictionary_export(study=source, language=language)
        if out == "-":
            self.stdout.write(text, ending="")
            return
        try:
            Path(out).write_text(text, encoding="utf-8", newline="")
        except OSError as exc:
            raise CommandError(f"Cannot write {out}: {exc.strerror}.") from exc
        rows = list(csv.reader(io.StringIO(text, newline="")))[1:]
        forms = len({row[1] for row in rows})
        self.stdout.write(
            self.style.SUCCESS(f"Wrote {len(rows)} fields of {forms} instruments to {out}.")
        )

from django.core.management.base import BaseCommand, CommandError

from surveys.dictionary import DictionaryError, dictionary_import_forms
from surveys.models import Language, Study


class Command(BaseCommand):
    help = (
        "Import a REDCap data dictionary (CSV) into a study: one instrument per form. Everything "
        "is checked first and saved in one transaction; an instrument that already has responses "
        "gets a new version."
    )

    def add_arguments(self, parser):
        parser.add_argument("--study", required=True, help="Slug of the study.")
        parser.add_argument("path", help="The data dictionary, a CSV file in REDCap's format.")
        parser.add_argument(
            "--language",
            choices=Language.values,
            default=None,
            help="Language of the dictionary's texts (default: the study's).",
        )

    def handle(self, *args, study, path, language, **options):
        target = Study.objects.filter(slug=study).first()
        if target is None:
            raise CommandError(f"There is no study with the slug {study!r}.")
        try:
            with open(path, encoding="utf-8-sig", newline="") as file:
                text = file.read()
        except OSError as exc:
            raise CommandError(f"Cannot read {path}: {exc.strerror}.") from exc
        except UnicodeDecodeError as exc:
            raise CommandError(
                f"{path} is not UTF-8 text; save it as 'CSV UTF-8' and try again."
            ) from exc
        try:
            forms = dictionary_import_forms(study=target, text=text, language=language)
        except DictionaryError as exc:
            count = len(exc.errors)
            raise CommandError(
                "\n".join(
                    [
                        f"{path} was not imported; nothing was changed. "
                        f"{count} problem{'s' if count != 1 else ''}:",
                        *exc.messages,
                    ]
                )
            ) from exc
        total = sum(form.items for form in forms)
        self.stdout.write(
            self.style.SUCCESS(
                f"Imported {path} into study '{target.slug}': {len(forms)} instruments, "
                f"{total} items."
            )
        )
        for form in forms:
            slug, number, items = form.instrument.slug, form.version.number, form.items
            if form.outcome == "created":
                what = f"new instrument {form.instrument.name!r}, version {number}"
            elif form.outcome == "new version" and form.previous_number is not None:
                what = (
                    f"version {number} created; version {form.previous_number} is kept for its "
                    "responses"
                )
            elif form.outcome == "new version":
                what = f"version {number} created"
            elif form.outcome == "replaced":
                what = f"version {number} replaced in place (it has no responses)"
            else:
                what = f"unchanged, version {number}"
            self.stdout.write(f"  {slug}: {what}, {items} items")
            if form.stale_translations:
                self.stdout.write(
                    self.style.WARNING(
                        f"  {slug}: the text of {', '.join(form.stale_translations)} changed; "
                        "its other languages were kept as they were: check the translations."
                    )
                )

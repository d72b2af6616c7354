import time
from datetime import date

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from recovery.demo import demo_participant_link
from recovery.services import demo_study_seed, synthetic_study_delete
from recovery.synthetic import DEFAULT_EFFECT, EXACT_EFFECT_LIMIT
from surveys.models import Study


class Command(BaseCommand):
    help = (
        "Create a demo study from the built-in template and fill it with a synthetic cohort "
        "whose effect of high early involvement on 12-month use is planted and known."
    )

    def add_arguments(self, parser):
        parser.add_argument("--participants", type=int, default=300)
        parser.add_argument("--seed", type=int, default=1)
        parser.add_argument(
            "--effect",
            type=float,
            default=DEFAULT_EFFECT,
            help="Planted risk difference (default %(default)s).",
        )
        parser.add_argument("--study", default="demo", help="Slug of the study to create.")
        parser.add_argument(
            "--as-of",
            type=date.fromisoformat,
            default=None,
            help="Date the cohort is drawn as of (YYYY-MM-DD; default today). The same seed "
            "and date give the same data.",
        )
        existing = parser.add_mutually_exclusive_group()
        existing.add_argument(
            "--replace", action="store_true", help="Delete a study with this slug first."
        )
        existing.add_argument(
            "--if-missing", action="store_true", help="Do nothing if a study with this slug exists."
        )

    def handle(
        self, *args, participants, seed, effect, study, replace, if_missing, as_of, **options
    ):
        if participants < 1:
            raise CommandError("--participants must be at least 1.")
        if not -1 <= effect <= 1:
            raise CommandError("--effect is a risk difference between -1 and 1.")
        existing = Study.objects.filter(slug=study).first()
        if existing and if_missing:
            self.stdout.write(f"Study '{study}' already exists; left as it is.")
            return
        if existing and not replace:
            raise CommandError(f"Study '{study}' exists; pass --replace to rebuild it.")
        if existing and not existing.is_synthetic:
            raise CommandError(f"Study '{study}' holds real data: it is never replaced.")
        started = time.perf_counter()
        with transaction.atomic():
            if existing:
                synthetic_study_delete(study=existing)
            created, counts = demo_study_seed(
                slug=study, participants=participants, seed=seed, effect=effect, as_of=as_of
            )
        elapsed = time.perf_counter() - started
        self.stdout.write(
            self.style.SUCCESS(
                f"Seeded study '{created.slug}': {counts['participants']} participants, "
                f"{counts['assignments']} assignments, {counts['responses']} responses "
                f"in {elapsed:.1f} s."
            )
        )
        self.stdout.write(
            f"Planted effect of high involvement (first 3 months) on any use at 12 months: "
            f"{created.synthetic_params['true_effect']:+.3f} (seed {seed})."
        )
        found = demo_participant_link(study=created)
        if found is not None:
            self.stdout.write(f"A participant's personal link ({found[0].code}): {found[1]}")
        if abs(effect) > EXACT_EFFECT_LIMIT:
            self.stdout.write(
                self.style.WARNING(
                    f"|effect| > {EXACT_EFFECT_LIMIT}: some probabilities were clipped, "
                    "so the true effect above differs from the one asked."
                )
            )

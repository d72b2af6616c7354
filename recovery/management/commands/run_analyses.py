import json
from dataclasses import replace
from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from recovery.admin import run_meta
from recovery.analyses import AnalysisSpec, analysis_run_start, default_spec
from recovery.analysis import report
from recovery.analysis.suite import ANALYSES, FAMILIES, PS_MODELS
from recovery.models import AnalysisRun
from surveys.models import Study


class Command(BaseCommand):
    help = (
        "Run a study's analyses on its de-identified dataset (the admin's Analyses page, same "
        "code) and write report.html, results.csv and results.json to a folder. The run is "
        "saved and audited like one from the admin."
    )

    def add_arguments(self, parser):
        parser.add_argument("--study", required=True, help="The study's slug.")
        parser.add_argument("--out", required=True, help="The folder to write (made if needed).")
        parser.add_argument(
            "--analysis",
            action="append",
            choices=list(ANALYSES),
            default=[],
            help="An analysis to run (repeat); default: all.",
        )
        parser.add_argument("--exposure", help="Default: high_involvement.")
        parser.add_argument("--outcome", help="Default: any_use.")
        parser.add_argument(
            "--covariate", action="append", default=None, help="A baseline item (repeat)."
        )
        parser.add_argument("--site", action="append", default=[], help="A site code (repeat).")
        parser.add_argument("--exposure-wave", action="append", default=None)
        parser.add_argument("--outcome-wave")
        parser.add_argument("--family", choices=FAMILIES)
        parser.add_argument("--ps-model", choices=PS_MODELS)
        parser.add_argument("--caliper", type=float)
        parser.add_argument("--ratio", type=int)
        parser.add_argument("--replace", action="store_true", help="Match with replacement.")
        parser.add_argument("--seed", type=int)

    def handle(self, *args, study, out, **options):
        found = Study.objects.filter(slug=study).first()
        if found is None:
            raise CommandError(f"No study '{study}'.")
        spec = self._spec(default_spec(study=found), options)
        try:
            run = analysis_run_start(user=None, study=found, spec=spec, background=False)
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from exc
        if run.status != AnalysisRun.Status.DONE:
            raise CommandError(f"The analyses failed: {run.message}")
        folder = Path(out)
        folder.mkdir(parents=True, exist_ok=True)
        meta = run_meta(run)
        title = f"Analyses of {found.name} (run {run.pk})"
        (folder / "report.html").write_text(
            report.report_html(run.results, title=title, meta=meta), encoding="utf-8"
        )
        (folder / "results.csv").write_text(report.results_csv(run.results), encoding="utf-8")
        (folder / "results.json").write_text(
            json.dumps({"run": meta, **run.results}, indent=1, default=str), encoding="utf-8"
        )
        failed = [s["title"] for s in run.results["sections"] if s.get("error")]
        self.stdout.write(
            self.style.SUCCESS(
                f"Run {run.pk}: {run.participants} participants, {run.rows} rows; wrote "
                f"report.html, results.csv and results.json to {folder}."
            )
        )
        for section in run.results["sections"]:
            if section.get("error"):
                self.stdout.write(f"Not run: {section['title']}: {section['error']}")
        if failed and len(failed) == len(run.results["sections"]):
            raise CommandError("None of the analyses could be run on this data.")

    def _spec(self, spec: AnalysisSpec, options: dict) -> AnalysisSpec:
        changes = {}
        if options["analysis"]:
            changes["analyses"] = tuple(options["analysis"])
        for name in ("exposure", "outcome", "outcome_wave", "family", "ps_model", "seed", "ratio"):
            if options.get(name) is not None:
                changes[name] = options[name]
        if options.get("caliper") is not None:
            changes["caliper"] = options["caliper"] or None
        if options["covariate"] is not None:
            changes["covariates"] = tuple(options["covariate"])
        if options["exposure_wave"] is not None:
            changes["exposure_waves"] = tuple(options["exposure_wave"])
        if options["site"]:
            changes["sites"] = tuple(options["site"])
        if options["replace"]:
            changes["replace"] = True
        return replace(spec, **changes)

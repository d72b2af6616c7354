"""Validation: does the matched ATT recover the effect planted in the synthetic cohorts?

Issue 8 is done when, on synthetic cohorts with a planted effect, the matched ATT's 95 % interval
covers the planted effect in at least 18 of 20 seeds while the naive estimate is biased, for at
least two different effects. Two sources of data:

* ``--source db`` (the default): the whole path a researcher's run takes. For each effect and
  seed, ``manage.py seed_demo --effect E --seed S`` into a PostgreSQL database of the script's
  own (``recovery_bench_validate``), then ``recovery.analyses.analysis_data`` (the dataset
  builder's long frame → the analysis frame) and the suite's matching section
  (``recovery.analysis.suite.run_suite``), exactly as the admin's Analyses page runs it:
  exposure = high involvement (the derived measure) at the 1- or 3-month wave, outcome = any use
  (derived) at 12 months.
* ``--source generator``: the cohort generator's own arrays (``generate_cohort``, what
  ``seed_demo`` writes), without a database: fast, for many seeds (a check of the interval's
  calibration).

In both, ``recovery.analysis.matching.estimate_att`` runs with:

* exposure: high involvement in the first 3 months (db: the derived measure at m1 or m3;
  generator: ``truth["treated"]``, which the generator writes into the 1- and 3-month answers);
* outcome: any use in the 30 days before the 12-month survey, only for participants who
  answered it (about 70 %: the generator's follow-up loss depends on baseline covariates only);
* covariates: the baseline answers age, days of use in the past 30 days (severity), readiness to
  change, justice involvement and prior mutual-help experience. Severity and readiness are the
  two confounders the generator plants; the others are there because a researcher would
  choose them.

It prints one row per seed (ATT, its interval, whether the interval covers the effect, the
naive difference and its bias, the IPW estimate, the largest |SMD| after matching) and a
summary per effect: coverage count, mean ATT bias, mean naive bias and how many naive
intervals miss the effect.

    .venv/bin/python benchmarks/validate_matching.py [--source db|generator]
        [--participants 2000] [--seeds 20] [--first-seed 1] [--effects -0.15 -0.05]
        [--ps-model logistic]
        [--ratio 1] [--replace]
"""

import argparse
import os
import platform
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
if str(ROOT / "benchmarks") not in sys.path:
    sys.path.insert(0, str(ROOT / "benchmarks"))

from recovery.analysis.matching import estimate_att  # noqa: E402
from recovery.synthetic import generate_cohort  # noqa: E402

AS_OF = date(2026, 11, 24)
COVARIATES = ["age", "baseline_days_used", "readiness", "justice_involved", "prior_mhg"]
DB_NAME = "recovery_bench_validate"
STUDY = "validate"


def cohort_frame(cohort) -> pd.DataFrame:
    """One row per participant: exposure, 12-month outcome (missing if not answered) and the
    baseline covariates, from the generator's arrays."""
    n = len(cohort.participants)
    baseline = pd.DataFrame([cohort.answers[(i, "baseline")] for i in range(n)])
    answered = np.array([(i, "m12") in cohort.answers for i in range(n)])
    frame = baseline[COVARIATES].astype(float)
    frame.insert(0, "high_involvement_m3", cohort.truth["treated"].astype(int))
    frame.insert(1, "any_use_m12", np.where(answered, cohort.truth["y12"], np.nan))
    return frame


def generator_estimate(*, effect, seed, participants, options) -> tuple[float, dict]:
    cohort = generate_cohort(participants=participants, seed=seed, as_of=AS_OF, effect=effect)
    result = estimate_att(
        cohort_frame(cohort),
        treatment="high_involvement_m3",
        outcome="any_use_m12",
        covariates=COVARIATES,
        seed=seed,
        **options,
    )
    return cohort.true_effect, result.summary() | {
        "max_abs_smd_after": float(result.balance["smd_after"].abs().max())
    }


def db_setup() -> None:
    """A PostgreSQL database of the script's own, migrated; Django set up on it."""
    import pgdb

    pgdb.database_create(DB_NAME)
    os.environ["DATABASE_URL"] = pgdb.database_url(DB_NAME)
    os.environ.pop("REDIS_URL", None)
    os.environ["DJANGO_SETTINGS_MODULE"] = "recovery.settings.local"
    os.environ["DJANGO_READ_DOT_ENV_FILE"] = "false"
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def db_estimate(*, effect, seed, participants, options) -> tuple[float, dict]:
    """seed_demo, then the Analyses page's own path: analysis_data → run_suite (matching)."""
    from django.core.management import call_command

    from recovery.analyses import AnalysisSpec, analysis_data
    from recovery.analysis.suite import SuiteRequest, run_suite
    from surveys.models import Participant, Study

    call_command(
        "seed_demo",
        participants=participants,
        seed=seed,
        effect=effect,
        study=STUDY,
        as_of=AS_OF,
        replace=True,
        stdout=open(os.devnull, "w"),  # noqa: SIM115
    )
    study = Study.objects.get(slug=STUDY)
    spec = AnalysisSpec(analyses=("matching",), covariates=tuple(COVARIATES))
    frame, _ = analysis_data(study=study, people=Participant.objects.filter(study=study), spec=spec)
    sections = run_suite(
        frame,
        SuiteRequest(
            analyses=("matching",),
            exposure="high_involvement",
            outcome="any_use",
            covariates=tuple(f"{c}_bl" for c in COVARIATES),
            exposure_waves=("m1", "m3"),
            outcome_wave="m12",
            seed=seed,
            **options,
        ),
    )
    section = sections[0]
    if section.error:
        raise SystemExit(f"effect {effect}, seed {seed}: {section.error}")
    balance = section.tables["balance"]
    from recovery.synthetic import generate_cohort as draw

    truth = draw(participants=participants, seed=seed, as_of=AS_OF, effect=effect).true_effect
    return truth, section.summary | {"max_abs_smd_after": float(balance["smd_after"].abs().max())}


def validate(
    *,
    effect: float,
    seeds: range,
    participants: int,
    source: str = "generator",
    ps_model: str = "logistic",
    ratio: int = 1,
    replace: bool = False,
) -> pd.DataFrame:
    estimate = db_estimate if source == "db" else generator_estimate
    options = {"ps_model": ps_model, "ratio": ratio, "replace": replace}
    rows = []
    for seed in seeds:
        truth, r = estimate(effect=effect, seed=seed, participants=participants, options=options)
        rows.append(
            {
                "effect": effect,
                "seed": seed,
                "truth": truth,
                "n_used": r["n_used"],
                "matched": r["n_matched_treated"],
                "unmatched": r["n_unmatched_treated"],
                "att": r["att"],
                "ci_low": r["ci_low"],
                "ci_high": r["ci_high"],
                "covered": r["ci_low"] <= truth <= r["ci_high"],
                "naive": r["naive"],
                "naive_bias": r["naive"] - truth,
                "naive_covers": r["naive_ci_low"] <= truth <= r["naive_ci_high"],
                "ipw_att": r["ipw_att"],
                "ipw_covered": r["ipw_ci_low"] <= truth <= r["ipw_ci_high"],
                "max_abs_smd_after": r["max_abs_smd_after"],
            }
        )
    return pd.DataFrame(rows)


def summarise(table: pd.DataFrame) -> pd.DataFrame:
    return table.groupby("effect", sort=False).agg(
        seeds=("seed", "size"),
        covered=("covered", "sum"),
        mean_att=("att", "mean"),
        mean_att_bias=("att", lambda a: float(np.mean(a - table.loc[a.index, "truth"]))),
        mean_naive=("naive", "mean"),
        mean_naive_bias=("naive_bias", "mean"),
        naive_intervals_missing=("naive_covers", lambda c: int((~c).sum())),
        ipw_covered=("ipw_covered", "sum"),
        worst_smd_after=("max_abs_smd_after", "max"),
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", choices=["db", "generator"], default="db")
    parser.add_argument("--participants", type=int, default=2000)
    parser.add_argument("--keep", action="store_true", help="Keep the database (db source).")
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--first-seed", type=int, default=1, help="Seeds first..first+seeds-1.")
    parser.add_argument("--effects", type=float, nargs="+", default=[-0.15, -0.05])
    parser.add_argument(
        "--ps-model", default="logistic", choices=["logistic", "random_forest", "gradient_boosting"]
    )
    parser.add_argument("--ratio", type=int, default=1)
    parser.add_argument("--replace", action="store_true")
    args = parser.parse_args()

    started = time.perf_counter()
    if args.source == "db":
        db_setup()
    tables = [
        validate(
            effect=effect,
            seeds=range(args.first_seed, args.first_seed + args.seeds),
            participants=args.participants,
            source=args.source,
            ps_model=args.ps_model,
            ratio=args.ratio,
            replace=args.replace,
        )
        for effect in args.effects
    ]
    elapsed = time.perf_counter() - started
    table = pd.concat(tables, ignore_index=True)
    if args.source == "db" and not args.keep:
        import pgdb
        from django.db import connections

        connections.close_all()
        pgdb.database_drop(DB_NAME)

    print(
        f"source {args.source}: estimate_att on cohorts of {args.participants} participants, "
        f"ps_model={args.ps_model}, ratio={args.ratio}, replace={args.replace}, caliper=0.2 SD; "
        f"covariates: {', '.join(COVARIATES)}"
    )
    print(f"Python {platform.python_version()}, {platform.machine()}; {elapsed:.1f} s in all\n")
    columns = [
        "effect",
        "seed",
        "n_used",
        "matched",
        "unmatched",
        "att",
        "ci_low",
        "ci_high",
        "covered",
        "naive",
        "naive_bias",
        "ipw_att",
        "max_abs_smd_after",
    ]
    with pd.option_context("display.width", 200, "display.max_rows", 500):
        print(table[columns].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
        print()
        print(summarise(table).to_string(float_format=lambda v: f"{v:.3f}"))

    needed = int(np.ceil(0.9 * args.seeds))
    ok = bool((summarise(table)["covered"] >= needed).all())
    print(
        f"\n{'PASS' if ok else 'FAIL'}: the matched 95 % interval covers the planted effect in "
        f"at least {needed} of {args.seeds} seeds for every effect."
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

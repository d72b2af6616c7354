"""Synthetic cohorts with planted, known effects (for the demo, tests and benchmarks).

The causal story planted here (all numbers are the generator's own, not from a paper):

* Baseline severity (days of use in the 30 days before baseline, ``s = days / 30``) and
  readiness to change (``r = readiness / 10``) drive both who becomes highly involved in mutual-help
  groups during the first 3 months (``H``) and who uses at 12 months. Both are measured at baseline.
* Each participant has two potential outcomes for any use in the 30 days before the 12-month wave:
  ``p0 = 0.25 + 0.30 s + 0.20 (1 - r)`` without high involvement and ``p1 = p0 + effect`` with it,
  realised from one shared uniform draw so that ``Y1 - Y0`` differs from zero only by the effect.
  ``p0`` lies in [0.25, 0.75], so for ``|effect| <= 0.25`` no probability is clipped and the true
  risk difference (ATE and ATT alike) is exactly ``effect``.
* ``P(H = 1) = logistic(-0.62 - 3.0 (s - 0.5) + 3.0 (r - 0.6))``: less severe, more ready people
  get more involved, and they would also use less anyway, so the naive high-versus-low difference
  exaggerates the benefit (it is more negative than ``effect``). Because ``p0`` is linear in ``s``
  and ``r``, adjusting for them recovers the effect.
* Follow-up loss depends only on baseline covariates (worse for justice-involved participants),
  falling to about 70 % at 12 months, so adjusting for baseline covariates stays unbiased.

Same seed, same data: every draw comes from one ``numpy.random.Generator``; calendar dates are
relative to ``as_of``.
"""

from collections import Counter
from dataclasses import dataclass, field
from datetime import date, timedelta

import numpy as np

from recovery.battery import (
    FELLOWSHIPS,
    FOLLOW_UP_WAVES,
    FORMATS,
    SUBSTANCES,
    TWELVE_STEP,
    WaveSpec,
)

DEFAULT_EFFECT = -0.15
EXACT_EFFECT_LIMIT = 0.25

# Share of each wave that answers, before the penalty for justice involvement.
RESPONSE_BASE = {"baseline": 1.0, "m1": 0.93, "m3": 0.88, "m6": 0.82, "m12": 0.74}
JUSTICE_RESPONSE_PENALTY = 0.13

SITES = [
    ("NYC", "Lower Manhattan Recovery Clinic", "America/New_York"),
    ("CHI", "West Side Outpatient Program", "America/Chicago"),
    ("LAX", "Harbor Community Treatment", "America/Los_Angeles"),
]

FIRST_NAMES = [
    "Alex",
    "Sam",
    "Jordan",
    "Taylor",
    "Casey",
    "Morgan",
    "Jamie",
    "Riley",
    "Avery",
    "Rosa",
    "Luis",
    "Maria",
    "José",
    "Keisha",
    "Darnell",
    "Mei",
    "Priya",
    "Omar",
]

_FELLOWSHIP_CODE = {stem: code for code, stem, _ in FELLOWSHIPS}
_SUBSTANCE_STEMS = [stem for _, stem, _ in SUBSTANCES]
# Main fellowship by primary substance code: (fellowship stems, probabilities).
_MAIN_FELLOWSHIP = {
    "1": (["na", "ma", "smart", "aa", "dharma"], [0.6, 0.1, 0.15, 0.05, 0.1]),
    "2": (["ca", "na", "aa", "smart"], [0.4, 0.35, 0.1, 0.15]),
    "3": (["cma", "na", "smart", "lifering"], [0.45, 0.3, 0.2, 0.05]),
    "4": (["na", "smart", "aa"], [0.5, 0.3, 0.2]),
    "5": (["aa", "smart", "lifering", "wfs"], [0.65, 0.2, 0.1, 0.05]),
    "6": (
        ["na", "smart", "dharma", "allrecovery", "wellbriety", "other"],
        [0.4, 0.25, 0.15, 0.1, 0.05, 0.05],
    ),
}
_SECOND_FELLOWSHIPS = ["aa", "smart", "dharma", "allrecovery", "na", "other"]


@dataclass
class SyntheticParticipant:
    index: int
    code: str
    site_code: str
    timezone: str
    language: str
    enrolled_on: date
    contact: dict[str, str]


@dataclass
class SyntheticCohort:
    params: dict
    participants: list[SyntheticParticipant]
    # answers[(participant index, wave slug)] for every wave the participant would answer.
    answers: dict[tuple[int, str], dict]
    # Share of the window (0 = opens, 1 = closes) at which each answer is submitted.
    answer_timing: dict[tuple[int, str], float]
    # Hidden truth, one array per name, indexed like ``participants``.
    truth: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def true_effect(self) -> float:
        """The planted average risk difference of H on any use at 12 months."""
        return float(np.mean(self.truth["p1"] - self.truth["p0"]))


def _choice(rng: np.random.Generator, codes: list[str], probs: list[float], n: int) -> np.ndarray:
    p = np.asarray(probs, dtype=float)
    return rng.choice(np.asarray(codes, dtype=object), size=n, p=p / p.sum())


def generate_cohort(
    *,
    participants: int,
    seed: int = 1,
    effect: float = DEFAULT_EFFECT,
    as_of: date,
    site_specs: list[tuple[str, str, str]] | None = None,
    completed_share: float = 0.8,
) -> SyntheticCohort:
    """Draw a cohort. ``completed_share`` of participants enrolled long enough ago that every
    wave's window has closed by ``as_of``; the rest enrolled within the past year."""
    if participants < 1:
        raise ValueError("participants must be at least 1")
    if not -1.0 <= effect <= 1.0:
        raise ValueError("effect is a risk difference and must lie between -1 and 1")
    rng = np.random.default_rng(seed)
    n = participants
    sites = site_specs or SITES

    # --- Baseline covariates --------------------------------------------------------------
    site_idx = rng.choice(len(sites), size=n, p=np.full(len(sites), 1 / len(sites)))
    age = np.clip(np.round(rng.normal(38, 11, n)), 18, 75).astype(int)
    gender = _choice(rng, ["1", "2", "3", "4"], [0.38, 0.58, 0.03, 0.01], n)
    race = _choice(
        rng, [str(i) for i in range(1, 9)], [0.03, 0.02, 0.25, 0.18, 0.01, 0.46, 0.04, 0.01], n
    )
    substance = _choice(rng, ["1", "2", "3", "4", "5", "6"], [0.45, 0.15, 0.2, 0.05, 0.1, 0.05], n)
    setting = _choice(rng, ["1", "2", "3"], [0.35, 0.5, 0.15], n)
    justice = (rng.random(n) < 0.3).astype(int)
    prior_mhg = (rng.random(n) < 0.55).astype(int)
    severity_days = np.clip(np.round(30 * rng.beta(1.3, 1.5, n)), 0, 30).astype(int)
    s = severity_days / 30.0
    readiness = np.clip(np.round(rng.normal(6.5 - 3.0 * (s - 0.5), 2.0, n)), 0, 10).astype(int)
    r = readiness / 10.0
    on_opioids = substance == "1"
    mat_opioid = _choice(rng, ["0", "1", "2", "3", "5"], [0.35, 0.3, 0.25, 0.05, 0.05], n)
    mat_other = _choice(rng, ["0", "4", "5"], [0.93, 0.04, 0.03], n)
    mat0 = np.where(on_opioids, mat_opioid, mat_other)

    # --- Exposure and potential outcomes ---------------------------------------------------
    logit = -0.62 - 3.0 * (s - 0.5) + 3.0 * (r - 0.6)
    treated = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    p0 = 0.25 + 0.30 * s + 0.20 * (1 - r)
    p1 = np.clip(p0 + effect, 0.0, 1.0)
    u12 = rng.random(n)
    y0 = (u12 < p0).astype(int)
    y1 = (u12 < p1).astype(int)
    y12 = np.where(treated == 1, y1, y0)

    # --- Who answers which wave -------------------------------------------------------------
    responds = {}
    for wave in FOLLOW_UP_WAVES:
        p = np.clip(RESPONSE_BASE[wave.slug] - JUSTICE_RESPONSE_PENALTY * justice, 0, 1)
        responds[wave.slug] = rng.random(n) < p
    responds["baseline"][:] = True

    # --- Calendar ---------------------------------------------------------------------------
    last_close = max(w.offset_days + w.window_after_days for w in FOLLOW_UP_WAVES) + 2
    completed = rng.random(n) < completed_share
    days_ago = np.where(completed, last_close + rng.integers(0, 240, n), rng.integers(0, 365, n))
    language = _choice(rng, ["en", "es"], [0.85, 0.15], n)
    first_name = rng.integers(0, len(FIRST_NAMES), n)
    phone_tail = rng.integers(0, 10_000, n)

    # Person-level traits that shape every follow-up.
    online_share = rng.beta(1.5, 3.0, n)
    craving_base = 2 + 5 * s + rng.normal(0, 1, n)
    main_fellowship = np.array(
        [_choice(rng, *_MAIN_FELLOWSHIP[sub], 1)[0] for sub in substance], dtype=object
    )
    has_second = rng.random(n) < 0.25
    second_fellowship = _choice(rng, _SECOND_FELLOWSHIPS, [1] * len(_SECOND_FELLOWSHIPS), n)
    second_substance = _choice(rng, _SUBSTANCE_STEMS, [1] * len(_SUBSTANCE_STEMS), n)

    participants_out: list[SyntheticParticipant] = []
    # Each site numbers its own participants, as enrolment does: these are the study IDs
    # seeding takes from the engine's numbering (surveys.services.participant_codes_next) for a
    # new study, written out here because this module stays free of Django.
    numbers: Counter[str] = Counter()
    for i in range(n):
        code, _name, tz = sites[site_idx[i]]
        numbers[code] += 1
        participants_out.append(
            SyntheticParticipant(
                index=i,
                code=f"{code}-{numbers[code]:04d}",
                site_code=code,
                timezone=tz,
                language=str(language[i]),
                enrolled_on=as_of - timedelta(days=int(days_ago[i])),
                contact={
                    "first_name": FIRST_NAMES[first_name[i]],
                    "email": f"participant{i + 1}.seed{seed}@example.org",
                    # 555-01xx numbers are reserved for fiction in North America.
                    "phone": f"+1212555{phone_tail[i] % 100 + 100:04d}",
                },
            )
        )

    answers: dict[tuple[int, str], dict] = {}
    timing: dict[tuple[int, str], float] = {}
    mat = mat0.copy()
    # What each participant last told us about their medication (a skipped wave tells nothing).
    last_reported_mat = mat0.copy()
    for wave in FOLLOW_UP_WAVES:
        if wave.slug == "baseline":
            for i in range(n):
                answers[(i, "baseline")] = {
                    "age": int(age[i]),
                    "gender": str(gender[i]),
                    "race_ethnicity": str(race[i]),
                    "primary_substance": str(substance[i]),
                    "treatment_setting": str(setting[i]),
                    "justice_involved": int(justice[i]),
                    "mat_status": str(mat0[i]),
                    "prior_mhg": int(prior_mhg[i]),
                    "baseline_days_used": int(severity_days[i]),
                    "readiness": int(readiness[i]),
                    "craving": int(np.clip(round(craving_base[i]), 0, 10)),
                }
                timing[(i, "baseline")] = float(rng.random() * 0.3)
            continue
        high = _wave_involvement(rng, wave, treated)
        use = _wave_use(rng, wave, p0, effect, high, y12)
        mat = _wave_mat(rng, mat)
        for i in range(n):
            if not responds[wave.slug][i]:
                continue
            answers[(i, wave.slug)] = _followup_answers(
                rng,
                wave=wave,
                high=bool(high[i]),
                use=bool(use[i]),
                s=s[i],
                r=r[i],
                prior=bool(prior_mhg[i]),
                substance=str(substance[i]),
                second_substance=str(second_substance[i]),
                mat_before=str(last_reported_mat[i]),
                mat_now=str(mat[i]),
                online_share=float(online_share[i]),
                craving_base=float(craving_base[i]),
                treated=bool(treated[i]),
                main_fellowship=str(main_fellowship[i]),
                second_fellowship=str(second_fellowship[i]) if has_second[i] else None,
            )
            timing[(i, wave.slug)] = float(np.clip(rng.beta(1.2, 3.0), 0, 0.95))
        answered = responds[wave.slug]
        last_reported_mat[answered] = mat[answered]

    return SyntheticCohort(
        params={
            "participants": n,
            "seed": seed,
            "effect": effect,
            "as_of": as_of.isoformat(),
            "completed_share": completed_share,
        },
        participants=participants_out,
        answers=answers,
        answer_timing=timing,
        truth={
            "treated": treated,
            "p0": p0,
            "p1": p1,
            "y0": y0,
            "y1": y1,
            "y12": y12,
            "severity": s,
            "readiness": r,
            "justice": justice,
        },
    )


def _wave_involvement(rng: np.random.Generator, wave: WaveSpec, treated: np.ndarray) -> np.ndarray:
    """High involvement at a wave: exactly ``H`` in the first 3 months, drifting afterwards."""
    if wave.months <= 3:
        return treated.astype(bool)
    stay = 0.75 if wave.months <= 6 else 0.65
    become = 0.12 if wave.months <= 6 else 0.15
    return np.where(
        treated == 1, rng.random(treated.size) < stay, rng.random(treated.size) < become
    )


def _wave_use(
    rng: np.random.Generator,
    wave: WaveSpec,
    p0: np.ndarray,
    effect: float,
    high: np.ndarray,
    y12: np.ndarray,
) -> np.ndarray:
    if wave.slug == "m12":
        return y12.astype(bool)
    factor = {1: 0.8, 3: 0.9}.get(int(wave.months), 1.0)
    p = np.clip(p0 * factor + effect * high, 0, 1)
    return rng.random(p.size) < p


def _wave_mat(rng: np.random.Generator, mat: np.ndarray) -> np.ndarray:
    on = mat != "0"
    stop = on & (rng.random(mat.size) < 0.08)
    start = ~on & (rng.random(mat.size) < 0.03)
    out = mat.copy()
    out[stop] = "0"
    out[start] = "2"
    return out


def _followup_answers(
    rng: np.random.Generator,
    *,
    wave: WaveSpec,
    high: bool,
    use: bool,
    s: float,
    r: float,
    prior: bool,
    substance: str,
    second_substance: str,
    mat_before: str,
    mat_now: str,
    online_share: float,
    craving_base: float,
    treated: bool,
    main_fellowship: str,
    second_fellowship: str | None,
) -> dict:
    a: dict = {}
    if high:
        attended = True
        total = max(5, int(rng.poisson(14)))
        home_group = has_sponsor = service = True
    else:
        attended = rng.random() < min(0.9, 0.25 + 0.4 * r + 0.1 * prior)
        total = int(rng.poisson(5)) + 1 if attended else 0
        home_group = attended and rng.random() < 0.35
        has_sponsor = attended and rng.random() < 0.3
        service = attended and rng.random() < 0.2
        if home_group and has_sponsor and service:
            # Not highly involved by construction: one of the four conditions must fail.
            service = False

    a["attended_any"] = int(attended)
    if attended:
        groups = [main_fellowship] + (
            [second_fellowship]
            if second_fellowship and second_fellowship != main_fellowship
            else []
        )
        counts = [total] if len(groups) == 1 else [total - total * 3 // 10, total * 3 // 10]
        groups = [g for g, c in zip(groups, counts, strict=True) if c > 0]
        counts = [c for c in counts if c > 0]
        a["fellowships"] = sorted((_FELLOWSHIP_CODE[g] for g in groups), key=int)
        fmt_p = np.array(
            [
                (1 - online_share) * 0.9,
                online_share * 0.8,
                online_share * 0.2,
                (1 - online_share) * 0.1,
            ]
        )
        for g, c in zip(groups, counts, strict=True):
            split = rng.multinomial(c, fmt_p / fmt_p.sum())
            for (fmt, _), k in zip(FORMATS, split, strict=True):
                a[f"mtg_{g}_{fmt}"] = int(k)
    a["home_group"] = int(home_group)
    a["has_sponsor"] = int(has_sponsor)
    if has_sponsor:
        a["sponsor_contact"] = str(
            rng.choice(
                ["1", "2", "3", "4"], p=[0.3, 0.4, 0.2, 0.1] if high else [0.1, 0.3, 0.35, 0.25]
            )
        )
    a["is_sponsor"] = int(rng.random() < (0.3 if high else 0.03 if attended else 0))
    a["service_work"] = int(service)
    twelve_step = attended and main_fellowship in TWELVE_STEP
    a["steps_completed"] = int(
        rng.integers(3, 13) if high and twelve_step else rng.integers(0, 5) if twelve_step else 0
    )
    a["speaks_at_meetings"] = int(rng.random() < (0.7 if high else 0.25 if attended else 0))
    a["member_contact_outside"] = int(rng.random() < (0.85 if high else 0.35 if attended else 0.05))
    a["reads_literature"] = int(rng.random() < (0.8 if high else 0.4 if attended else 0.1))

    a["mat_status"] = mat_now
    changed = mat_now != mat_before
    a["mat_changed"] = int(changed)
    if changed:
        a["mat_stopped_pressure"] = int(mat_now == "0" and twelve_step and rng.random() < 0.25)
    if mat_now != "0" and attended:
        a["mat_disclosed"] = int(rng.random() < 0.5)
        a["mat_stigma"] = int(rng.random() < 0.25)

    months = wave.months
    craving = (
        craving_base - 0.15 * months - 0.10 * months * treated + 1.5 * use + rng.normal(0, 1.2)
    )
    a["craving"] = int(np.clip(round(craving), 0, 10))

    primary_stem = _SUBSTANCE_STEMS[int(substance) - 1]
    days = {stem: 0 for stem in _SUBSTANCE_STEMS}
    if use:
        total_days = int(np.clip(round(1 + 29 * rng.beta(1.0, 2.2) * (0.5 + s)), 1, 30))
        days[primary_stem] = total_days
        if second_substance != primary_stem and rng.random() < 0.35:
            days[second_substance] = int(rng.integers(1, total_days + 1))
    for stem in _SUBSTANCE_STEMS:
        a[f"days_{stem}"] = days[stem]
    # Any use since the last survey is kept equal to any use in the past 30 days, so the
    # outcome is unambiguous in the synthetic data.
    a["any_use_since_last"] = int(use)
    if use:
        # A lapse (a week or less), something in between, or a relapse (two weeks or more);
        # the run is part of the past 30 days, so it never exceeds the days of use reported.
        kind = rng.random()
        run = int(
            rng.integers(1, 8)
            if kind < 0.5
            else rng.integers(8, 14)
            if kind < 0.65
            else rng.integers(14, 31)
        )
        a["longest_use_run_days"] = min(run, max(days.values()))
    a["overdose"] = int(use and rng.random() < (0.04 if substance == "1" else 0.005))
    if attended:
        a["cohesion"] = int(np.clip(round(rng.normal(65 + 15 * high, 15)), 0, 100))
    a["qol_overall"] = int(np.clip(round(rng.normal(6 - 2 * use + 0.5 * high, 1.5)), 0, 10))
    a["qol_health"] = int(np.clip(round(rng.normal(6 - 1.5 * use, 1.5)), 0, 10))
    return a

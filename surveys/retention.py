"""Retention: per wave, how many surveys were due, completed, are in their window or were
missed; the same split by subgroup; how long after the first message people answered; and
after which reminder.

Definitions (the dashboard states them next to the numbers):

* **Due** and the **completion rate** (completed ÷ due) are defined once, in ``surveys.due``,
  for this dashboard and the researchers' retention table alike: due = completed or missed.
  Open and in-progress surveys (in their window), scheduled ones (window not open yet) and
  cancelled ones (the participant withdrew, died or finished the study) are not due.
* **In window now**: open or in progress, shown apart: they become due when completed or
  missed.
* **Time to completion** runs from the first message sent for the survey (normally the
  invitation) to its completion. A survey completed without any message sent before (answered
  at a visit, say) is counted apart.
* **Reminder completed after**: the number of reminders sent before completion, i.e. the
  messages sent before completion, less one (the first message, the invitation). Sent messages
  are counted, not read off the highest ``sequence``: a skipped or failed message keeps its
  sequence number, and a re-plan numbers new messages after it, so the highest sequence can
  overstate what the participant received.

Recurring check-ins (``Wave.recurrence_days``) are summed over all their occurrences in the
per-wave table and left out of the retention curve and the subgroup split.

Subgroups are registered by an app at start-up (``recovery`` registers gender, race/ethnicity,
justice involvement, MAT status, treatment setting and main fellowship): a subgroup is the
participant's answer to one variable of one instrument at one wave, collapsed to a code and
labelled from the item's choices. The engine never imports the app.

Everything is aggregated in SQL, grouped by wave and answer: the number of queries is the same
whatever the number of participants, and Python only folds the grouped rows. The scope is the
sites ``selectors.sites_for_user`` gives (the rule behind ``participants_for_user``); when they
are the whole study the assignments are filtered by the study's waves, which spares each
statement a join to every participant (measured in benchmarks/README.md).
"""

import json
from collections import defaultdict
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import connections, transaction
from django.db.models import (
    Case,
    Count,
    Exists,
    F,
    IntegerField,
    OuterRef,
    Q,
    Value,
    When,
)
from django.db.models.fields.json import KeyTextTransform
from django.utils import timezone

from surveys.datasets.codes import ROW_STATUSES
from surveys.due import DUE_ROW_STATUSES
from surveys.models import (
    Assignment,
    Item,
    Response,
    Site,
    Study,
    SubgroupAnswer,
    SubgroupVariable,
    Wave,
    WaveInstrument,
)
from surveys.selectors import sites_for_user

STATUS = Assignment.Status
# The assignment statuses whose dataset status is due (surveys.due): completed and missed.
DUE_STATUSES = tuple(status for status, row in ROW_STATUSES.items() if row in DUE_ROW_STATUSES)
IN_WINDOW_STATUSES = (STATUS.OPEN, STATUS.IN_PROGRESS)

# Upper edges (days after the first message) of the time-to-completion buckets; a last bucket
# holds everything later.
DAY_EDGES = (1, 3, 7, 14, 28)

NOT_KNOWN = "not-known"
NOT_KNOWN_LABEL = "Not known"
SEVERAL, SEVERAL_LABEL = "several", "Several"
NONE, NONE_LABEL = "none", "None"


# --- The subgroup registry ---------------------------------------------------------------------


@dataclass(frozen=True)
class Subgroup:
    """A split of participants by one answer.

    ``wave`` is the slug of the wave whose answer counts; empty means the first wave (by
    position) that gives ``instrument``. ``collapse`` turns the stored answer (a code, a list of
    codes for a multiple choice, or None when the question was not shown or not answered) into
    one code; ``extra_labels`` labels the codes it makes that are not choices of the item.
    Participants without a submitted answer at that wave are "Not known".
    """

    name: str
    label: str
    instrument: str
    variable: str
    wave: str = ""
    collapse: Callable[[object], str] | None = field(default=None, compare=False)
    extra_labels: tuple[tuple[str, str], ...] = ()
    note: str = ""


_SUBGROUPS: dict[str, Subgroup] = {}


def subgroup_register(
    name: str,
    label: str,
    *,
    instrument: str,
    variable: str,
    wave: str = "",
    collapse: Callable[[object], str] | None = None,
    extra_labels: dict[str, str] | None = None,
    note: str = "",
) -> Subgroup:
    subgroup = Subgroup(
        name=name,
        label=label,
        instrument=instrument,
        variable=variable,
        wave=wave,
        collapse=collapse,
        extra_labels=tuple((extra_labels or {}).items()),
        note=note,
    )
    existing = _SUBGROUPS.get(name)
    if existing is not None and existing != subgroup:
        raise ValueError(f"a different retention subgroup is already named {name!r}")
    _SUBGROUPS[name] = subgroup
    return subgroup


def subgroups() -> list[Subgroup]:
    return list(_SUBGROUPS.values())


def subgroup_get(name: str) -> Subgroup | None:
    return _SUBGROUPS.get(name)


def collapse_one_or_several(value: object) -> str:
    """A multiple choice as one code: the code if one was ticked, "Several" if more, "None" if
    none was (or the question was not shown, e.g. skipped by branching)."""
    if isinstance(value, list | tuple):
        codes = sorted({str(v) for v in value})
        if len(codes) == 1:
            return codes[0]
        return SEVERAL if codes else NONE
    if value is None or value == "":
        return NONE
    return str(value)


def _default_collapse(value: object) -> str:
    if isinstance(value, list | tuple):
        return collapse_one_or_several(value)
    if value is None or value == "":
        return NOT_KNOWN
    return str(value)


def _parse_answer(raw: object) -> object:
    """The stored answer from its JSON text as each database returns it: PostgreSQL gives
    every value as text ('1', '["1", "4"]', 'true'), SQLite numbers as numbers."""
    if raw is None:
        return None
    if isinstance(raw, bool):
        return "1" if raw else "0"
    if isinstance(raw, int | float):
        return str(int(raw)) if float(raw).is_integer() else str(raw)
    text = str(raw)
    if text[:1] == "[":
        try:
            return json.loads(text)
        except ValueError:
            return text
    if text == "null":  # SQLite's text for a JSON null; PostgreSQL gives NULL
        return None
    return {"true": "1", "false": "0"}.get(text, text)


# --- What the dashboard shows ------------------------------------------------------------------


@dataclass(frozen=True)
class WaveCounts:
    wave_id: int
    name: str
    recurring: bool
    due: int = 0
    completed: int = 0
    in_window: int = 0
    missed: int = 0

    @property
    def rate(self) -> float | None:
        """Completed ÷ due (``surveys.due``), None while none is due."""
        return self.completed / self.due if self.due else None


@dataclass(frozen=True)
class SubgroupValue:
    code: str
    label: str
    waves: list[WaveCounts]  # the single waves, in the order of RetentionSummary.curve


@dataclass(frozen=True)
class SubgroupSplit:
    subgroup: Subgroup
    source: str  # where the answer comes from, in words
    values: list[SubgroupValue]


@dataclass(frozen=True)
class TimingRow:
    wave_name: str
    completed: int
    without_message: int
    buckets: list[int]  # completions per day bucket (DAY_EDGES, then later)

    @property
    def after_message(self) -> int:
        return sum(self.buckets)

    @property
    def cumulative_shares(self) -> list[float | None]:
        """Share of the completions after a message made by day 1, 3, 7, 14, 28."""
        total = self.after_message
        shares, running = [], 0
        for count in self.buckets[: len(DAY_EDGES)]:
            running += count
            shares.append(running / total if total else None)
        return shares


@dataclass(frozen=True)
class ReminderRow:
    wave_name: str
    completed: int
    without_message: int
    by_reminders: list[int]  # index k: completed after k reminders (0 = the invitation only)


@dataclass(frozen=True)
class RetentionSummary:
    study: Study
    site: Site | None
    now: datetime
    waves: list[WaveCounts]  # every active wave, by position (recurring ones summed)
    subgroup: SubgroupSplit | None
    timing: list[TimingRow]  # per wave with completions, then all waves
    reminders: list[ReminderRow]  # the same rows
    max_reminders: int  # the highest k in ``reminders`` (0 when nobody had a reminder)

    @property
    def curve(self) -> list[WaveCounts]:
        """The single waves: the retention curve's points."""
        return [wave for wave in self.waves if not wave.recurring]

    @property
    def has_recurring(self) -> bool:
        return any(wave.recurring for wave in self.waves)

    @property
    def totals(self) -> WaveCounts:
        return WaveCounts(
            wave_id=0,
            name="All waves",
            recurring=False,
            due=sum(w.due for w in self.waves),
            completed=sum(w.completed for w in self.waves),
            in_window=sum(w.in_window for w in self.waves),
            missed=sum(w.missed for w in self.waves),
        )


def _status_counts() -> dict:
    """Conditional counts of the query's assignments by status."""
    return {
        "due": Count("pk", filter=Q(status__in=DUE_STATUSES)),
        "completed": Count("pk", filter=Q(status=STATUS.COMPLETED)),
        "in_window": Count("pk", filter=Q(status__in=IN_WINDOW_STATUSES)),
        "missed": Count("pk", filter=Q(status=STATUS.MISSED)),
    }


COUNTS = ("due", "completed", "in_window", "missed")


def _add(into: dict[str, int], row: dict) -> None:
    for key in COUNTS:
        into[key] += row[key]


@dataclass(frozen=True)
class _Scope:
    """Which assignments the user may count: a filter on Assignment, and the same from
    Message. The whole study is filtered by its waves (no join to participants); part of it by
    the participants' sites."""

    assignments: Q
    messages: Q
    empty: bool


def _scope(*, user, study: Study, site: Site | None, wave_ids: list[int]) -> _Scope:
    """The sites the user may see in ``study`` (``selectors.sites_for_user``, the rule behind
    ``participants_for_user``: a participant is in scope when their site is), narrowed to
    ``site``; one query."""
    sites = list(
        Site.objects.filter(study=study)
        .annotate(visible=Exists(sites_for_user(user=user).filter(pk=OuterRef("pk"))))
        .values_list("pk", "visible")
    )
    visible = [pk for pk, seen in sites if seen]
    if site is not None:
        visible = [pk for pk in visible if pk == site.pk]
    if visible and len(visible) == len(sites):
        return _Scope(Q(wave_id__in=wave_ids), Q(assignment__wave_id__in=wave_ids), False)
    return _Scope(
        Q(participant__site_id__in=visible),
        Q(assignment__participant__site_id__in=visible),
        not visible,
    )


def retention_summary(
    *,
    user,
    study: Study,
    site: Site | None = None,
    subgroup: str | Subgroup | None = None,
    now: datetime | None = None,
) -> RetentionSummary:
    """The retention dashboard's numbers for the participants of ``study`` that ``user`` may
    see (a coordinator only their sites' participants), narrowed to ``site`` if given (a site
    outside the user's scope gives zeros), split by ``subgroup`` if given (a registered name).

    Four queries (sites, waves, counts per wave, messages), six with a split (its source and
    labels; the split's counts replace the counts per wave; on PostgreSQL four more around it:
    a savepoint, and a planner setting switched off and back), whatever the number of people."""
    now = now or timezone.now()
    if isinstance(subgroup, str):
        subgroup = _SUBGROUPS[subgroup]
    waves = list(
        Wave.objects.filter(study=study)
        .order_by("position", "pk")
        .values_list("pk", "name", "recurrence_days", "is_active")
    )
    scope = _scope(user=user, study=study, site=site, wave_ids=[w[0] for w in waves])

    split_rows: list[dict] = []
    if subgroup is not None:
        split_rows, labels, source_text = _split_rows(subgroup=subgroup, study=study, scope=scope)
        counts: dict[int, dict[str, int]] = defaultdict(lambda: dict.fromkeys(COUNTS, 0))
        for row in split_rows:
            _add(counts[row["wave_id"]], row)
    elif scope.empty:
        counts = {}
    else:
        counts = {
            row["wave_id"]: row
            for row in Assignment.objects.filter(scope.assignments)
            .values("wave_id")
            .annotate(**_status_counts())
            .order_by()
        }
    wave_counts = [
        WaveCounts(
            wave_id=pk,
            name=name,
            recurring=bool(recurrence),
            **{k: v for k, v in counts.get(pk, {}).items() if k in COUNTS},
        )
        for pk, name, recurrence, active in waves
        if active or pk in counts  # a switched-off wave only while it has surveys
    ]
    timing, reminders, max_reminders = _timing_and_reminders(scope=scope, waves=wave_counts)
    split = None
    if subgroup is not None:
        split = _split(
            subgroup=subgroup,
            rows=split_rows,
            labels=labels,
            source_text=source_text,
            single_waves=[w for w in wave_counts if not w.recurring],
        )
    return RetentionSummary(
        study=study,
        site=site,
        now=now,
        waves=wave_counts,
        subgroup=split,
        timing=timing,
        reminders=reminders,
        max_reminders=max_reminders,
    )


def _timing_and_reminders(
    *, scope: _Scope, waves: list[WaveCounts]
) -> tuple[list[TimingRow], list[ReminderRow], int]:
    """One query over the completed surveys in scope, grouped by wave, day bucket (from the
    first message sent to completion) and the number of messages sent
    (``Assignment.messages_sent``, kept by the dispatcher: messages never go after completion,
    so these are the messages the participant had before completing; a skipped or failed one
    is not counted)."""
    if scope.empty:
        return [], [], 0
    bucket = Case(
        *(
            When(completed_at__lte=F("first_message_at") + timedelta(days=days), then=Value(i))
            for i, days in enumerate(DAY_EDGES)
        ),
        default=Value(len(DAY_EDGES)),
        output_field=IntegerField(),
    )
    grouped = (
        Assignment.objects.filter(
            scope.assignments,
            status=STATUS.COMPLETED,
            messages_sent__gt=0,
            first_message_at__lt=F("completed_at"),
        )
        .annotate(bucket=bucket)
        .values_list("wave_id", "bucket", "messages_sent")
        .annotate(n=Count("pk"))
        .order_by()
    )

    buckets: dict[int, list[int]] = defaultdict(lambda: [0] * (len(DAY_EDGES) + 1))
    by_reminders: dict[int, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    max_reminders = 0
    for wave_id, bucket_index, messages, n in grouped:
        buckets[wave_id][int(bucket_index)] += n
        reminders_sent = int(messages) - 1
        by_reminders[wave_id][reminders_sent] += n
        max_reminders = max(max_reminders, reminders_sent)

    timing, reminders = [], []
    all_buckets = [0] * (len(DAY_EDGES) + 1)
    all_reminders = [0] * (max_reminders + 1)
    all_completed = all_without = 0
    for wave in waves:
        if not wave.completed:
            continue
        wave_buckets = buckets[wave.wave_id]
        without = wave.completed - sum(wave_buckets)
        per_k = [by_reminders[wave.wave_id].get(k, 0) for k in range(max_reminders + 1)]
        timing.append(TimingRow(wave.name, wave.completed, without, list(wave_buckets)))
        reminders.append(ReminderRow(wave.name, wave.completed, without, per_k))
        all_buckets = [a + b for a, b in zip(all_buckets, wave_buckets, strict=True)]
        all_reminders = [a + b for a, b in zip(all_reminders, per_k, strict=True)]
        all_completed += wave.completed
        all_without += without
    if timing:
        timing.append(TimingRow("All waves", all_completed, all_without, all_buckets))
        reminders.append(ReminderRow("All waves", all_completed, all_without, all_reminders))
    return timing, reminders, max_reminders


def _split_rows(
    *, subgroup: Subgroup, study: Study, scope: _Scope
) -> tuple[list[dict], dict[str, str], str]:
    """Three queries: where the answer comes from (the wave and instrument), the item's labels,
    and every assignment in scope counted by wave and by the participant's answer there. The
    answer is reached by two filtered LEFT JOINs (the participant's assignment at the source
    wave, its submitted response to the instrument), so each assignment is counted once,
    people without an answer included; the rows are grouped by the answer's text, never per
    participant."""
    sources = WaveInstrument.objects.filter(
        wave__study=study, instrument__slug=subgroup.instrument
    ).order_by("wave__position", "wave_id")
    if subgroup.wave:
        sources = sources.filter(wave__slug=subgroup.wave)
    copied = SubgroupVariable.objects.filter(
        instrument_slug=subgroup.instrument, variable=subgroup.variable
    )
    source = (
        sources.annotate(copied=Exists(copied))
        .values("wave_id", "wave__name", "instrument_id", "instrument__name", "copied")
        .first()
    )
    item = (
        Item.objects.filter(
            version__instrument__study=study,
            version__instrument__slug=subgroup.instrument,
            variable=subgroup.variable,
        )
        .order_by("-version__number")
        .values("kind", "choices")
        .first()
    )
    labels: dict[str, str] = {}
    if item is not None:
        if item["kind"] == Item.Kind.YESNO:
            labels = {"1": "Yes", "0": "No"}
        for choice in item["choices"] or []:
            text = choice.get("label") or {}
            labels[str(choice["code"])] = text.get("en") or next(iter(text.values()), "")
    labels.update(dict(subgroup.extra_labels))
    labels[NOT_KNOWN] = NOT_KNOWN_LABEL
    if source is None:
        source_text = f"{subgroup.instrument}: not part of this study"
    else:
        source_text = f"the {source['instrument__name']} answers at {source['wave__name']}"
    if scope.empty:
        return [], labels, source_text
    if source is None:  # the study does not ask it: everybody is "Not known"
        rows = (
            Assignment.objects.filter(scope.assignments)
            .values("wave_id")
            .annotate(**_status_counts())
            .order_by()
        )
        return [{**row, "answer": None, "has_answers": False} for row in rows], labels, source_text
    rows = _split_query(
        scope=scope,
        variable=subgroup.variable,
        wave_id=source["wave_id"],
        instrument_id=source["instrument_id"],
        copied=source["copied"],
    )
    return rows, labels, source_text


def _split_query(
    *, scope: _Scope, variable: str, wave_id: int, instrument_id: int, copied: bool
) -> list[dict]:
    """Every assignment in scope counted by wave and by its participant's answer at the source
    (their submitted response to the instrument at the wave's first occurrence), in one
    statement: a CTE of (participant, answer) LEFT JOINed to the assignments.

    The answers come from ``SubgroupAnswer`` when the variable is ``copied`` there
    (``surveys.subgroup_copy``: every registered subgroup after ``migrate``, on PostgreSQL):
    a narrow table of only these answers, so the statement no longer reads every response's
    JSON (benchmarks/README.md). Otherwise (SQLite, or a subgroup registered since the last
    ``migrate``) from the responses themselves: the same values by the same extraction.

    The two sub-selects are the ORM's own SQL (the JSON extraction compiled for the database);
    the statement around them is written out because the ORM cannot join a sub-select. On
    PostgreSQL the CTE is MATERIALIZED: it takes the answer out of the JSON before the join, so
    the hash holds (participant, answer) and not every response's whole JSON, measured 2× faster
    at 50,000 participants (benchmarks/README.md)."""
    if copied:
        answers = SubgroupAnswer.objects.filter(
            wave_id=wave_id, instrument_id=instrument_id, variable=variable
        ).values("participant_id", "answer")
    else:
        answers = Response.objects.filter(
            status=Response.Status.SUBMITTED,
            instrument_id=instrument_id,
            assignment__wave_id=wave_id,
            assignment__occurrence=0,
        ).values(
            participant=F("assignment__participant_id"),
            answer=KeyTextTransform(variable, "answers"),
        )
    assignments = Assignment.objects.filter(scope.assignments).values(
        "wave_id", "participant_id", "status"
    )
    # No ORDER BY inside (the models' default orderings): a sort of every row, for nothing.
    answers, assignments = answers.order_by(), assignments.order_by()
    connection = connections[assignments.db]
    answers_sql, answers_params = answers.query.get_compiler(using=answers.db).as_sql()
    counted_sql, counted_params = assignments.query.get_compiler(using=assignments.db).as_sql()
    materialized = "MATERIALIZED " if connection.vendor == "postgresql" else ""
    counts, count_params = [], []
    for statuses in (DUE_STATUSES, (STATUS.COMPLETED,), IN_WINDOW_STATUSES, (STATUS.MISSED,)):
        counts.append(
            f"SUM(CASE WHEN a.status IN ({', '.join(['%s'] * len(statuses))}) THEN 1 ELSE 0 END)"
        )
        count_params.extend(statuses)
    # Only the ORM's compiled SQL and fixed text go into the statement; values are parameters.
    statement = (
        f"WITH src (participant, answer) AS {materialized}({answers_sql}) "  # noqa: S608
        f"SELECT a.wave_id, src.answer, src.participant IS NOT NULL, {', '.join(counts)} "
        f"FROM ({counted_sql}) a LEFT JOIN src ON src.participant = a.participant_id "
        "GROUP BY 1, 2, 3"
    )
    postgresql = connection.vendor == "postgresql"
    in_transaction = transaction.atomic(using=assignments.db) if postgresql else nullcontext()
    with in_transaction, connection.cursor() as cursor:
        if postgresql:
            # Measured at 50,000 participants: the planner's merge join walks every
            # assignment through the participant index (~250 ms); hashing the small answer
            # table and scanning the assignments once takes a fraction of that. Switched off
            # for this statement only, and back as it was (a request may be one transaction).
            cursor.execute(
                "SELECT current_setting('enable_mergejoin'), "
                "set_config('enable_mergejoin', 'off', true)"
            )
            merge_join = cursor.fetchone()[0]
        cursor.execute(statement, [*answers_params, *count_params, *counted_params])
        grouped = cursor.fetchall()
        if postgresql:
            cursor.execute("SELECT set_config('enable_mergejoin', %s, true)", [merge_join])
        return [
            {
                "wave_id": wave,
                "answer": answer,
                "has_answers": bool(has),
                **dict(zip(COUNTS, (int(n or 0) for n in numbers), strict=True)),
            }
            for wave, answer, has, *numbers in grouped
        ]


def _split(
    *,
    subgroup: Subgroup,
    rows: list[dict],
    labels: dict[str, str],
    source_text: str,
    single_waves: list[WaveCounts],
) -> SubgroupSplit:
    """Fold the grouped rows into one line per collapsed answer, over the single waves."""
    wave_ids = [w.wave_id for w in single_waves]
    zero = dict.fromkeys(COUNTS, 0)
    table: dict[str, dict[int, dict[str, int]]] = defaultdict(
        lambda: {pk: dict(zero) for pk in wave_ids}
    )
    collapse = subgroup.collapse or _default_collapse
    for row in rows:
        if row["wave_id"] not in wave_ids:
            continue  # a recurring check-in: not part of the split
        code = collapse(_parse_answer(row["answer"])) if row["has_answers"] else NOT_KNOWN
        _add(table[code][row["wave_id"]], row)

    # Choices in the item's order, then the collapse's own codes, then any other answer, then
    # "Not known"; a value nobody has is left out.
    order = [code for code in labels if code != NOT_KNOWN]
    order += sorted(code for code in table if code not in labels)
    order.append(NOT_KNOWN)
    values = []
    for code in order:
        if code not in table:
            continue
        per_wave = table[code]
        if not any(per_wave[pk]["due"] or per_wave[pk]["completed"] for pk in wave_ids):
            continue
        values.append(
            SubgroupValue(
                code=code,
                label=labels.get(code, code),
                waves=[
                    WaveCounts(
                        wave_id=w.wave_id, name=w.name, recurring=False, **per_wave[w.wave_id]
                    )
                    for w in single_waves
                ],
            )
        )
    return SubgroupSplit(subgroup=subgroup, source=source_text, values=values)

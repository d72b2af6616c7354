"""The dataset builder: a study's submitted responses as one tidy long frame.

One row per participant × assignment (a wave, and its occurrence for a recurring check-in), in
this column order:

1. ``pid`` (pseudonymous ID, ``surveys.datasets.pid``), ``site`` (site code), ``wave`` (slug),
   ``occurrence`` (0 for a single wave; 0, 1, 2… for a recurring one), ``status``
   (``codes.ROW_STATUSES``: completed / missed / not_yet_due / open / cancelled),
   ``days_since_enrolment`` (of the day the window opened, in the participant's time zone;
   enrolment day = 0), ``days_since_window_opened`` (of the day the wave was completed; empty
   unless completed), then the version number of the instrument answered: ``instrument_version``
   when every wave of the dataset has one instrument, else ``instrument_version_<instrument>``
   for each instrument.
2. Every item variable of the waves' instruments (all versions; newest version's order first),
   except descriptive items, items marked as identifiers (unless ``include_identifiers``) and
   free text (``text``/``notes``, unless ``include_free_text``). Calculated items are included.
   A multiple-choice item becomes one 0/1 column per choice, ``<variable>___<code>`` (REDCap's
   convention). A date answer becomes days since enrolment (no calendar date leaves the app).
   Single choices with whole-number codes are numbers; a variable shared by two instruments
   (``craving`` at baseline and follow-up) is one column.
3. The derived measures registered for the instruments (``surveys.derived``), computed from
   each submitted response's answers by the same functions the analyses use. A measure named
   like an item variable is ``<name>_derived``.
4. Baseline covariates, if asked for: ``<column>_bl``, the baseline row's value repeated on every
   row of the participant (the baseline wave is the study's first single wave, by due day).

Cells without a value carry a missing code (``surveys.datasets.codes``). Only submitted
responses give values: a draft left in a closed window is a missed wave.

A fixed number of queries whatever the number of participants (six, plus the caller's
``participants`` subquery folded into them). Each frame carries the columns' metadata in
``frame.attrs["columns"]`` (label, type, value labels, source instruments and versions,
formulas), which the CSV writer and the codebook read.
"""

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import date
from functools import cache
from zoneinfo import ZoneInfo

import pandas as pd
from django.db.models import QuerySet

from surveys import derived, logic
from surveys.datasets import codes
from surveys.datasets.pid import pseudonymous_id
from surveys.models import (
    Assignment,
    Instrument,
    Item,
    Participant,
    Response,
    Study,
    Wave,
    WaveInstrument,
)
from surveys.validation import answer_blank

ID_COLUMNS = ("pid", "site")
ROW_COLUMNS = (
    "wave",
    "occurrence",
    "status",
    "days_since_enrolment",
    "days_since_window_opened",
)
FREE_TEXT_KINDS = {Item.Kind.TEXT, Item.Kind.NOTES}
EXPANDED = "___"  # <variable>___<code>
BASELINE_SUFFIX = "_bl"

# Column types, as pandas extension dtypes (nullable, so that empty cells stay empty).
INTEGER, DECIMAL, STRING = "Int64", "Float64", "string"
_WIDTH = {INTEGER: 0, DECIMAL: 1, STRING: 2}


@dataclass
class Column:
    """What a dataset column is: the codebook's row for it."""

    name: str
    label: str
    dtype: str  # INTEGER, DECIMAL or STRING
    role: str  # id, row, version, item, derived, covariate
    variable: str = ""  # the item variable or derived measure it comes from
    item_kind: str = ""  # the item's kind, or "derived:<kind>"
    choice: str = ""  # the choice code of an expanded multiple-choice column
    values: dict[str, str] = field(default_factory=dict)  # value (as text) -> label
    # instrument slug -> version numbers holding the variable
    sources: dict[str, list[int]] = field(default_factory=dict)
    formula: str = ""  # a derived measure's formula, a calculated item's calculation
    branching: str = ""
    min_value: str = ""
    max_value: str = ""
    missing_codes: bool = False  # whether the cells may hold codes.MISSING_CODES
    wave: str = ""  # wide shape: the wave (and occurrence) of the column


def _label(texts: dict, language: str) -> str:
    return (texts or {}).get(language) or (texts or {}).get("en") or ""


def _is_whole(text: str) -> bool:
    return text.lstrip("-").isdigit()


@cache
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


@dataclass
class _Structure:
    """The study's design, read in three queries: waves, their instruments, every item."""

    study: Study
    waves: list[Wave]
    wave_instruments: dict[int, list[Instrument]]
    # instrument id -> [(version id, version number, [items in position order])], newest first
    versions: dict[int, list[tuple[int, int, list[Item]]]]

    @classmethod
    def load(cls, study: Study) -> "_Structure":
        waves = list(Wave.objects.filter(study=study).order_by("position", "id"))
        wave_instruments: dict[int, list[Instrument]] = {wave.pk: [] for wave in waves}
        for link in (
            WaveInstrument.objects.filter(wave__study=study)
            .select_related("instrument")
            .order_by("wave_id", "position", "id")
        ):
            wave_instruments[link.wave_id].append(link.instrument)
        versions: dict[int, list[tuple[int, int, list[Item]]]] = {}
        by_version: dict[int, tuple[int, int, list[Item]]] = {}
        for item in (
            Item.objects.filter(version__instrument__study=study)
            .select_related("version")
            .order_by("version__instrument_id", "-version__number", "position")
        ):
            entry = by_version.get(item.version_id)
            if entry is None:
                entry = by_version[item.version_id] = (item.version_id, item.version.number, [])
                versions.setdefault(item.version.instrument_id, []).append(entry)
            entry[2].append(item)
        return cls(study, waves, wave_instruments, versions)

    def baseline_wave(self) -> Wave | None:
        single = [wave for wave in self.waves if not wave.recurrence_days]
        return min(single, key=lambda w: (w.offset_days, w.position)) if single else None


def _select(objects: list, wanted: Iterable | None, what: str) -> list:
    """``objects`` named in ``wanted`` (slugs or the objects themselves), in design order."""
    if wanted is None:
        return list(objects)
    keys = {w.slug if hasattr(w, "slug") else str(w) for w in wanted}
    chosen = [obj for obj in objects if obj.slug in keys]
    unknown = keys - {obj.slug for obj in chosen}
    if unknown:
        raise ValueError(f"unknown {what}: {', '.join(sorted(unknown))}")
    return chosen


class _Plan:
    """The frame's columns, and how each response's answers fill them."""

    def __init__(
        self,
        *,
        structure: _Structure,
        waves: list[Wave],
        instruments: list[Instrument],
        include_identifiers: bool,
        include_free_text: bool,
        language: str,
    ):
        self.language = language
        self.include_identifiers = include_identifiers
        self.include_free_text = include_free_text
        self.columns: list[Column] = []
        self.index: dict[str, int] = {}
        wanted = {instrument.pk for instrument in instruments}
        self.wave_instruments = {
            wave.pk: [i for i in structure.wave_instruments[wave.pk] if i.pk in wanted]
            for wave in waves
        }
        ordered: dict[int, Instrument] = {}
        for wave in waves:
            for instrument in self.wave_instruments[wave.pk]:
                ordered.setdefault(instrument.pk, instrument)
        self.instruments = list(ordered.values())
        self.versions = {i.pk: structure.versions.get(i.pk, []) for i in self.instruments}

        for name in (*ID_COLUMNS, *ROW_COLUMNS):
            dtype = INTEGER if name in ("occurrence",) or name.startswith("days") else STRING
            self._add(Column(name=name, label=_ROW_LABELS[name], dtype=dtype, role="id"))
        self.columns[self.index["status"]].values = dict(codes.ROW_STATUS_LABELS)
        for name in ID_COLUMNS:
            self.columns[self.index[name]].role = "id"
        for name in ROW_COLUMNS:
            self.columns[self.index[name]].role = "row"
        one_each = all(len(found) <= 1 for found in self.wave_instruments.values())
        self.version_column: dict[int, int] = {}
        for instrument in self.instruments:
            name = "instrument_version" if one_each else f"instrument_version_{_safe(instrument)}"
            if name not in self.index:
                self._add(
                    Column(
                        name=name,
                        label="Version of the instrument answered"
                        + ("" if one_each else f" ({instrument.slug})"),
                        dtype=INTEGER,
                        role="version",
                    )
                )
            self.version_column[instrument.pk] = self.index[name]
            self.columns[self.index[name]].sources.setdefault(instrument.slug, [])

        # instrument id -> the columns its answers fill (codes go there when not submitted)
        self.instrument_columns: dict[int, list[int]] = {i.pk: [] for i in self.instruments}
        # version id -> [(item, target)]: target is a column index, or for a multiple choice
        # a list of (column index, code)
        self.ops: dict[int, list[tuple[Item, object]]] = {}
        self.item_columns: dict[str, list[int]] = {}  # variable -> its column(s)
        for instrument in self.instruments:
            self._plan_items(instrument)
        self.derived: dict[int, list[tuple[derived.DerivedMeasure, int]]] = {}
        for instrument in self.instruments:
            self._plan_derived(instrument)
        self._check_waves()

    def _add(self, column: Column) -> int:
        self.index[column.name] = len(self.columns)
        self.columns.append(column)
        return self.index[column.name]

    def _exported(self, item: Item) -> bool:
        if item.kind == Item.Kind.DESCRIPTIVE:
            return False
        if item.identifier and not self.include_identifiers:
            return False
        return item.kind not in FREE_TEXT_KINDS or self.include_free_text

    def _plan_items(self, instrument: Instrument) -> None:
        for version_id, number, items in self.versions[instrument.pk]:
            ops = self.ops.setdefault(version_id, [])
            for item in items:
                if not self._exported(item):
                    continue
                if item.kind == Item.Kind.MULTIPLE:
                    targets = []
                    for choice in item.choices:
                        code = str(choice.get("code"))
                        column = self._item_column(
                            instrument,
                            number,
                            item,
                            name=f"{item.variable}{EXPANDED}{code}",
                            label=f"{item.text(self.language)}: "
                            f"{_label(choice.get('label'), self.language)}",
                            dtype=INTEGER,
                            choice=code,
                        )
                        targets.append((column, code))
                    ops.append((item, targets))
                else:
                    ops.append(
                        (
                            item,
                            self._item_column(
                                instrument,
                                number,
                                item,
                                name=item.variable,
                                label=item.text(self.language),
                                dtype=_item_dtype(item),
                            ),
                        )
                    )

    def _item_column(
        self,
        instrument: Instrument,
        number: int,
        item: Item,
        *,
        name: str,
        label: str,
        dtype: str,
        choice: str = "",
    ) -> int:
        index = self.index.get(name)
        if index is None:
            values = {}
            if item.kind == Item.Kind.SINGLE:
                values = {
                    str(c.get("code")): _label(c.get("label"), self.language) for c in item.choices
                }
            elif item.kind == Item.Kind.YESNO:
                values = {"1": "Yes", "0": "No"}
            elif choice:
                values = {"1": "Checked", "0": "Unchecked"}
            index = self._add(
                Column(
                    name=name,
                    label=label,
                    dtype=dtype,
                    role="item",
                    variable=item.variable,
                    item_kind=item.kind,
                    choice=choice,
                    values=values,
                    formula=item.calculation,
                    branching=item.branching,
                    min_value=item.min_value,
                    max_value=item.max_value,
                    missing_codes=True,
                )
            )
            self.item_columns.setdefault(item.variable, []).append(index)
        column = self.columns[index]
        if column.role != "item":
            raise ValueError(f"item variable {name!r} is also a dataset column of its own")
        if _WIDTH[dtype] > _WIDTH[column.dtype]:
            column.dtype = dtype
        if item.kind == Item.Kind.SINGLE:
            for c in item.choices:
                column.values.setdefault(str(c.get("code")), _label(c.get("label"), self.language))
        found = column.sources.setdefault(instrument.slug, [])
        if number not in found:
            found.append(number)
            found.sort()
        if index not in self.instrument_columns[instrument.pk]:
            self.instrument_columns[instrument.pk].append(index)
        return index

    def _plan_derived(self, instrument: Instrument) -> None:
        planned = self.derived.setdefault(instrument.pk, [])
        for measure in derived.measures(instrument.slug):
            name = measure.name
            if name in self.index and self.columns[self.index[name]].role != "derived":
                name = f"{measure.name}_derived"
            index = self.index.get(name)
            if index is None:
                index = self._add(
                    Column(
                        name=name,
                        label=measure.label,
                        dtype=_DERIVED_DTYPES.get(measure.kind, STRING),
                        role="derived",
                        variable=measure.name,
                        item_kind=f"derived:{measure.kind}",
                        values=dict(measure.choices)
                        if measure.choices
                        else ({"1": "Yes", "0": "No"} if measure.kind == "binary" else {}),
                        formula=measure.formula,
                        missing_codes=True,
                    )
                )
            column = self.columns[index]
            column.sources.setdefault(instrument.slug, [])
            planned.append((measure, index))
            if index not in self.instrument_columns[instrument.pk]:
                self.instrument_columns[instrument.pk].append(index)

    def _check_waves(self) -> None:
        for instruments in self.wave_instruments.values():
            seen: dict[int, str] = {}
            for instrument in instruments:
                for index in self.instrument_columns[instrument.pk]:
                    column = self.columns[index]
                    if column.role == "item" and index in seen:
                        raise ValueError(
                            f"instruments {seen[index]!r} and {instrument.slug!r} of one wave "
                            f"both have the variable {column.variable!r}: rename one of them"
                        )
                    seen[index] = instrument.slug


_ROW_LABELS = {
    "pid": "Pseudonymous participant ID (stable within this study)",
    "site": "Site code",
    "wave": "Wave",
    "occurrence": "Occurrence of a recurring wave (0 = first; 0 for a single wave)",
    "status": "Status of the wave",
    "days_since_enrolment": "Days from enrolment to the opening of the wave's window",
    "days_since_window_opened": "Days from the opening of the window to completion",
}
_DERIVED_DTYPES = {"integer": INTEGER, "binary": INTEGER, "decimal": DECIMAL, "category": STRING}


def _safe(instrument: Instrument) -> str:
    return instrument.slug.replace("-", "_")


def _item_dtype(item: Item) -> str:
    kind = item.kind
    if kind in (Item.Kind.INTEGER, Item.Kind.YESNO, Item.Kind.SLIDER, Item.Kind.DATE):
        return INTEGER
    if kind in (Item.Kind.DECIMAL, Item.Kind.CALC):
        return DECIMAL
    if kind == Item.Kind.SINGLE:
        whole = all(_is_whole(str(c.get("code"))) for c in item.choices)
        return INTEGER if whole and item.choices else STRING
    return STRING


def _code(value: int, dtype: str):
    return str(value) if dtype == STRING else value


def _value(item: Item, value, dtype: str, enrolled_on: date):
    """A stored answer as the dataset holds it."""
    if item.kind == Item.Kind.DATE:
        return (date.fromisoformat(str(value)) - enrolled_on).days
    if dtype == STRING:
        return str(value)
    if dtype == INTEGER:
        if isinstance(value, bool):
            return int(value)
        if isinstance(value, int):
            return value
        number = float(value)
        return int(number) if number.is_integer() else number  # a float widens the column
    return float(value)


def _fill_response(
    plan: _Plan,
    data: list[list],
    row: int,
    instrument_id: int,
    version_id: int,
    version_number: int,
    answers: dict,
    enrolled_on: date,
) -> None:
    columns = plan.columns
    for index in plan.instrument_columns[instrument_id]:
        data[index][row] = None  # a variable this version does not have stays empty
    data[plan.version_column[instrument_id]][row] = version_number
    for item, target in plan.ops.get(version_id, ()):
        value = answers.get(item.variable)
        if answer_blank(value):
            code = codes.NOT_SHOWN if not logic.shows(item.branching, answers) else None
            code = code if code is not None else codes.NOT_ANSWERED
            if isinstance(target, list):
                for index, _choice in target:
                    data[index][row] = code
            else:
                data[target][row] = _code(code, columns[target].dtype)
        elif isinstance(target, list):
            chosen = {str(v) for v in value} if isinstance(value, list) else {str(value)}
            for index, choice in target:
                data[index][row] = int(choice in chosen)
        else:
            data[target][row] = _value(item, value, columns[target].dtype, enrolled_on)
    for measure, index in plan.derived.get(instrument_id, ()):
        result = measure.compute(answers)
        if result is None:
            data[index][row] = None
        elif isinstance(result, bool):
            data[index][row] = int(result)
        else:
            data[index][row] = str(result) if columns[index].dtype == STRING else result


def participants_in(study: Study, participants: QuerySet[Participant] | None):
    """The study's participants, narrowed to ``participants`` (a caller's scoped queryset)."""
    found = Participant.objects.filter(study=study)
    if participants is not None:
        found = found.filter(pk__in=participants.values("pk"))
    return found


def dataset_long(
    *,
    study: Study,
    participants: QuerySet[Participant] | None = None,
    waves: Iterable | None = None,
    instruments: Iterable | None = None,
    covariates: Iterable[str] = (),
    include_free_text: bool = False,
    include_identifiers: bool = False,
    language: str = "en",
) -> pd.DataFrame:
    """The study's long dataset (see the module docstring for its columns and codes).

    ``participants`` is the caller's scope (already filtered to what the user may see);
    ``waves`` and ``instruments`` are slugs (or objects) to keep, in the study's order;
    ``covariates`` are variables (item variables or column names) whose baseline values are
    repeated on every row as ``<column>_bl``.
    """
    covariates = list(covariates)
    structure = _Structure.load(study)
    people = {
        pk: (pseudonymous_id(study_id=study.pk, participant_id=pk), site, enrolled_on, tz)
        for pk, site, enrolled_on, tz in participants_in(study, participants).values_list(
            "pk", "site__code", "enrolled_on", "timezone"
        )
    }
    wave_by_id = {wave.pk: wave for wave in structure.waves}
    selected_waves = _select(structure.waves, waves, "waves")
    baseline = structure.baseline_wave() if covariates else None
    if covariates and baseline is None:
        raise ValueError("the study has no baseline wave to take covariates from")
    fetched = {wave.pk for wave in selected_waves} | ({baseline.pk} if baseline else set())

    scope = participants_in(study, participants).values("pk")
    assignments = list(
        Assignment.objects.filter(participant__in=scope, wave_id__in=fetched).values_list(
            "pk", "participant_id", "wave_id", "occurrence", "status", "opens_at", "completed_at"
        )
    )
    if waves is None:  # a switched-off wave counts only if someone has it
        present = {a[2] for a in assignments}
        selected_waves = [w for w in selected_waves if w.is_active or w.pk in present]
    all_instruments = {
        i.pk: i for wave in structure.waves for i in structure.wave_instruments[wave.pk]
    }
    selected_instruments = _select(list(all_instruments.values()), instruments, "instruments")
    planned_waves = list(selected_waves)
    planned_instruments = list(selected_instruments)
    if baseline is not None:
        if baseline not in planned_waves:
            planned_waves.append(baseline)
        for instrument in structure.wave_instruments[baseline.pk]:
            if instrument not in planned_instruments:
                planned_instruments.append(instrument)
    plan = _Plan(
        structure=structure,
        waves=planned_waves,
        instruments=planned_instruments,
        include_identifiers=include_identifiers,
        include_free_text=include_free_text,
        language=language,
    )
    if instruments is not None:  # a wave without any of the instruments has no rows
        selected_waves = [w for w in selected_waves if plan.wave_instruments[w.pk]]
    position = {wave.pk: wave.position for wave in structure.waves}
    assignments = [a for a in assignments if a[2] in plan.wave_instruments]
    assignments.sort(key=lambda a: (people[a[1]][0], position[a[2]], a[3]))

    n = len(assignments)
    data: list[list] = [[None] * n for _ in plan.columns]
    row_of: dict[int, int] = {}
    col = plan.index
    for row, (pk, participant_id, wave_id, occurrence, status, opens_at, completed_at) in enumerate(
        assignments
    ):
        pid, site, enrolled_on, tz = people[participant_id]
        zone = _zone(tz)
        opened_on = opens_at.astimezone(zone).date()
        row_of[pk] = row
        data[col["pid"]][row] = pid
        data[col["site"]][row] = site
        data[col["wave"]][row] = wave_by_id[wave_id].slug
        data[col["occurrence"]][row] = occurrence
        data[col["status"]][row] = codes.ROW_STATUSES[status]
        data[col["days_since_enrolment"]][row] = (opened_on - enrolled_on).days
        if status == Assignment.Status.COMPLETED and completed_at is not None:
            days = (completed_at.astimezone(zone).date() - opened_on).days
            data[col["days_since_window_opened"]][row] = days
        code = codes.STATUS_CODES[status]
        for instrument in plan.wave_instruments[wave_id]:
            for index in plan.instrument_columns[instrument.pk]:
                data[index][row] = _code(code, plan.columns[index].dtype)

    wave_of = {pk: wave_id for pk, _, wave_id, *_ in assignments}
    participant_of = {pk: participant_id for pk, participant_id, *_ in assignments}
    instrument_ids = {i.pk for i in plan.instruments}
    responses = Response.objects.filter(
        assignment__participant__in=scope,
        assignment__wave_id__in=list(plan.wave_instruments),
        instrument_id__in=instrument_ids,
        status=Response.Status.SUBMITTED,
    ).values_list(
        "assignment_id",
        "instrument_id",
        "instrument_version_id",
        "instrument_version__number",
        "answers",
    )
    in_wave = {wave_id: {i.pk for i in found} for wave_id, found in plan.wave_instruments.items()}
    for assignment_id, instrument_id, version_id, number, answers in responses.iterator(2000):
        row = row_of.get(assignment_id)
        if row is None or instrument_id not in in_wave[wave_of[assignment_id]]:
            continue
        enrolled_on = people[participant_of[assignment_id]][2]
        _fill_response(
            plan, data, row, instrument_id, version_id, number, answers or {}, enrolled_on
        )

    frame = pd.DataFrame(
        {c.name: pd.array(data[i], dtype=c.dtype) for i, c in enumerate(plan.columns)}
    )
    columns = list(plan.columns)

    if covariates:
        frame, covariate_columns = _with_covariates(frame, plan, baseline, covariates)
        columns += covariate_columns
    # Drop what was read only for the covariates: baseline rows and columns not asked for.
    wanted_instruments = {i.slug for i in selected_instruments}
    keep = [
        c
        for c in columns
        if c.role not in ("item", "derived", "version") or set(c.sources) & wanted_instruments
    ]
    frame = frame[[c.name for c in keep]]
    returned = {wave.slug for wave in selected_waves}
    if set(frame["wave"].unique()) - returned:
        frame = frame[frame["wave"].isin(returned)].reset_index(drop=True)
    frame.attrs["columns"] = {c.name: asdict(c) for c in keep}
    frame.attrs["dataset"] = {
        "shape": "long",
        "study": study.slug,
        "waves": [w.slug for w in selected_waves],
        "recurring_waves": [w.slug for w in selected_waves if w.recurrence_days],
        "wave_instruments": {
            w.slug: [i.slug for i in plan.wave_instruments[w.pk] if i.slug in wanted_instruments]
            for w in selected_waves
        },
        "covariates": [c.name for c in keep if c.role == "covariate"],
    }
    return frame


def _with_covariates(
    frame: pd.DataFrame, plan: _Plan, baseline: Wave, covariates: list[str]
) -> tuple[pd.DataFrame, list[Column]]:
    sources: list[int] = []
    for name in covariates:
        if name in plan.item_columns:
            found = plan.item_columns[name]
        elif name in plan.index and plan.columns[plan.index[name]].role in ("item", "derived"):
            found = [plan.index[name]]
        else:
            raise ValueError(f"unknown covariate {name!r}: not an item or a derived measure")
        sources += [i for i in found if i not in sources]
    names = [plan.columns[i].name for i in sources]
    base = frame.loc[(frame["wave"] == baseline.slug) & (frame["occurrence"] == 0)]
    base = base.set_index("pid")[names]
    base.columns = [f"{name}{BASELINE_SUFFIX}" for name in names]
    added = []
    for index in sources:
        column = plan.columns[index]
        name = f"{column.name}{BASELINE_SUFFIX}"
        if name in plan.index:
            raise ValueError(f"the covariate column {name!r} is already a column")
        added.append(
            Column(
                **{
                    **asdict(column),
                    "name": name,
                    "label": f"{column.label} (baseline)",
                    "role": "covariate",
                }
            )
        )
    joined = frame.join(base, on="pid")
    for column in added:  # a participant without a baseline row keeps empty cells
        joined[column.name] = joined[column.name].astype(column.dtype)
    return joined, added

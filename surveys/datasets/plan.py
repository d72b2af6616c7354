"""The plan of a dataset: the study's design read once (``Structure``), and the columns a
dataset of chosen waves and instruments has (``Plan``): their names, types, labels, sources and
formulas (``Column``, the codebook's row), and which item or derived measure fills each.
``surveys.datasets.builder`` fills the columns.
"""

import contextlib
import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from surveys import derived, logic
from surveys.datasets import codes
from surveys.models import Instrument, Item, Study, Wave, WaveInstrument
from surveys.selectors import FREE_TEXT_KINDS, study_identifier_variables
from surveys.validation import item_limits

ID_COLUMNS = ("pid", "site")
# Date-shifted exports: calendar dates, each participant's moved back by its own offset.
SHIFTED_ID_COLUMNS = ("enrolled_on",)
SHIFTED_ROW_COLUMNS = ("window_opened_on", "completed_on")
ROW_COLUMNS = (
    "wave",
    "occurrence",
    "status",
    "days_since_enrolment",
    "days_since_window_opened",
)
READ_AS_TEXT = {Item.Kind.TEXT, Item.Kind.NOTES, Item.Kind.MULTIPLE, Item.Kind.DATE}
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
    # The column of its missing codes (``<name>_missing``), when a value of its own could be
    # one of them: its empty cells are then empty here and the code is written there.
    missing_column: str = ""
    wave: str = ""  # wide shape: the wave (and occurrence) of the column


def _label(texts: dict, language: str) -> str:
    return (texts or {}).get(language) or (texts or {}).get("en") or ""


def _is_whole(text: str) -> bool:
    return text.lstrip("-").isdecimal()


@dataclass
class Structure:
    """The study's design, read in four queries: waves, their instruments, every item, and
    each instrument's identifiers."""

    study: Study
    waves: list[Wave]
    wave_instruments: dict[int, list[Instrument]]
    # instrument id -> [(version id, version number, [items in position order])], newest first
    versions: dict[int, list[tuple[int, int, list[Item]]]]
    # the study's identifiers (``selectors.study_identifier_variables``: marked in any version
    # of any instrument, so an answer given to a version or an instrument without the mark is
    # left out too)
    identifiers: frozenset[str]

    @classmethod
    def load(cls, study: Study) -> "Structure":
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
        identifiers = study_identifier_variables(study_id=study.pk)
        return cls(study, waves, wave_instruments, versions, identifiers)

    def baseline_wave(self) -> Wave | None:
        single = [wave for wave in self.waves if not wave.recurrence_days]
        return min(single, key=lambda w: (w.offset_days, w.position)) if single else None


def select(objects: list, wanted: Iterable | None, what: str) -> list:
    """``objects`` named in ``wanted`` (slugs or the objects themselves), in design order."""
    if wanted is None:
        return list(objects)
    keys = {w.slug if hasattr(w, "slug") else str(w) for w in wanted}
    chosen = [obj for obj in objects if obj.slug in keys]
    unknown = keys - {obj.slug for obj in chosen}
    if unknown:
        raise ValueError(f"unknown {what}: {', '.join(sorted(unknown))}")
    return chosen


class Plan:
    """The frame's columns, and how each response's answers fill them."""

    def __init__(
        self,
        *,
        structure: Structure,
        waves: list[Wave],
        instruments: list[Instrument],
        include_identifiers: bool,
        include_free_text: bool,
        language: str,
        date_shift: bool = False,
    ):
        self.language = language
        self.date_shift = date_shift
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
        self.version_numbers = {
            version_id: number
            for found in self.versions.values()
            for version_id, number, _items in found
        }
        # the variables left out of the dataset as identifiers
        self.identifiers: frozenset[str] = (
            frozenset() if include_identifiers else structure.identifiers
        )

        for name in ID_COLUMNS + (SHIFTED_ID_COLUMNS if date_shift else ()):
            self._add(Column(name=name, label=_ROW_LABELS[name], dtype=STRING, role="id"))
        for name in ROW_COLUMNS + (SHIFTED_ROW_COLUMNS if date_shift else ()):
            dtype = INTEGER if name in ("occurrence",) or name.startswith("days") else STRING
            self._add(Column(name=name, label=_ROW_LABELS[name], dtype=dtype, role="row"))
        self.columns[self.index["status"]].values = dict(codes.ROW_STATUS_LABELS)
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

        # instrument id -> every variable its versions have (read for items, branching and
        # derived measures); those read as text, and the multiple-choice ones (JSON lists)
        self.variables: dict[int, list[str]] = {}
        self.text_variables: set[str] = set()
        self.multiple_variables: set[str] = set()
        for instrument in self.instruments:
            found = self.variables.setdefault(instrument.pk, [])
            for _version, _number, items in self.versions[instrument.pk]:
                for item in items:
                    if item.kind == Item.Kind.DESCRIPTIVE:
                        continue
                    if item.variable not in found:
                        found.append(item.variable)
                    if _item_dtype(item) == STRING or item.kind in READ_AS_TEXT:
                        self.text_variables.add(item.variable)
                    if item.kind == Item.Kind.MULTIPLE:
                        self.multiple_variables.add(item.variable)
        # instrument id -> the columns its answers fill (codes go there when not submitted)
        self.instrument_columns: dict[int, list[int]] = {i.pk: [] for i in self.instruments}
        # version id -> [(item, target)]: target is a column index, or for a multiple choice
        # a list of (column index, code)
        self.ops: dict[int, list[tuple[Item, object]]] = {}
        self.item_columns: dict[str, list[int]] = {}  # variable -> its column(s)
        # columns a value of which could be a missing code (_item_reaches_codes and
        # _measure_reaches_codes): each gets a column for its codes (missing_of)
        self.reaching: set[int] = set()
        for instrument in self.instruments:
            self._plan_items(instrument)
        self.derived: dict[int, list[tuple[derived.DerivedMeasure, int]]] = {}
        for instrument in self.instruments:
            self._plan_derived(instrument)
        self._check_waves()
        # owner column index -> the index of its missing codes' column
        self.missing_of: dict[int, int] = {}
        for index in sorted(self.reaching):
            self._plan_missing_column(index)

    def _add(self, column: Column) -> int:
        self.index[column.name] = len(self.columns)
        self.columns.append(column)
        return self.index[column.name]

    def _shifted(self, item: Item) -> bool:
        """A date answer written as a shifted date (else as days since enrolment)."""
        return self.date_shift and item.kind == Item.Kind.DATE

    def _exported(self, item: Item) -> bool:
        if item.kind == Item.Kind.DESCRIPTIVE or item.variable in self.identifiers:
            return False
        return item.kind not in FREE_TEXT_KINDS or self.include_free_text

    def _plan_items(self, instrument: Instrument) -> None:
        for version_id, number, items in self.versions[instrument.pk]:
            ops = self.ops.setdefault(version_id, [])
            ranges = _answer_ranges(items)
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
                    dtype = STRING if self._shifted(item) else _item_dtype(item)
                    index = self._item_column(
                        instrument,
                        number,
                        item,
                        name=item.variable,
                        label=item.text(self.language)
                        + (" (date-shifted)" if self._shifted(item) else ""),
                        dtype=dtype,
                    )
                    if _item_reaches_codes(item, dtype, ranges):  # (a choice's 0/1 never)
                        self.reaching.add(index)
                    ops.append((item, index))

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
                    min_value=item_limits(item)[0],
                    max_value=item_limits(item)[1],
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
            if _measure_reaches_codes(measure):
                self.reaching.add(index)
            planned.append((measure, index))
            if index not in self.instrument_columns[instrument.pk]:
                self.instrument_columns[instrument.pk].append(index)

    def _plan_missing_column(self, index: int) -> None:
        """Give column ``index`` a column of its own for its missing codes (``<name>_missing``):
        a value of its own could be one of them (a calculated item, a date before enrolment,
        a study's choice coded -99 "Refused"), and a researcher could not tell the two apart.
        """
        column = self.columns[index]
        name = f"{column.name}_missing"
        if name in self.index:
            raise ValueError(
                f"{column.name!r} needs a column for its missing codes, {name!r}, and a "
                "variable has that name: rename one of them"
            )
        companion = self._add(
            Column(
                name=name,
                label=f"Why {column.name} is empty (missing code)",
                dtype=INTEGER,
                role="missing",
                variable=column.variable,
                values={str(code): label for code, label in codes.MISSING_CODES.items()},
                sources={slug: list(numbers) for slug, numbers in column.sources.items()},
            )
        )
        column.missing_codes = False
        column.missing_column = name
        self.missing_of[index] = companion
        for found in self.instrument_columns.values():
            if index in found:
                found.append(companion)

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
    "enrolled_on": "Day of enrolment (date-shifted: moved back by the participant's offset)",
    "window_opened_on": "Day the wave's window opened (date-shifted)",
    "completed_on": "Day the wave was completed (date-shifted)",
}
_DERIVED_DTYPES = {"integer": INTEGER, "binary": INTEGER, "decimal": DECIMAL, "category": STRING}


def _number(text) -> float | None:
    """A bound or a choice code as a number, as the survey's logic reads it (None: none)."""
    number = math.nan if text is None or isinstance(text, bool) else logic.to_number(text)
    # no bound, a symbolic one (days_since_last_survey), or text ("nan", "inf", "Yes")
    return None if math.isnan(number) else number


def _range_reaches_codes(low: float | None, high: float | None) -> bool:
    """Whether a value between ``low`` and ``high`` (None or infinite: no limit) could be a
    missing code."""
    return (low is None or low <= codes.HIGHEST_CODE) and (
        high is None or high >= codes.LOWEST_CODE
    )


def _values_reach_codes(values: Iterable) -> bool:
    """Whether one of these values (choice codes, as text) is, or reads as, a missing code."""
    for value in values:
        text = str(value).strip()
        numbers = [_number(text)]
        with contextlib.suppress(ValueError):  # "-9.9e1": text to the logic, -99 to a CSV
            numbers.append(float(text))
        if text in codes.CODE_TEXTS or any(
            n is not None and codes.LOWEST_CODE <= n <= codes.HIGHEST_CODE for n in numbers
        ):
            return True
    return False


def _answer_ranges(items: list[Item]) -> dict[str, logic.Range]:
    """The numbers a version's answers can be, calculated items' included. As the answers'
    check calculates them (``validation.answers_clean``): every answer is there, and the
    calculations are made in position order (one reading a later one reads any number)."""
    ranges: dict[str, logic.Range] = {}
    whole: set[str] = set()  # answers that are whole numbers (a division by one skips 0)
    calculated = []
    for item in items:
        kind = item.kind
        if kind == Item.Kind.YESNO:
            ranges[item.variable] = (0.0, 1.0)
            whole.add(item.variable)
        elif kind in (Item.Kind.INTEGER, Item.Kind.DECIMAL, Item.Kind.SLIDER):
            low, high = (_number(limit) for limit in item_limits(item))  # a slider's 0-100
            ranges[item.variable] = (
                -math.inf if low is None else low,
                math.inf if high is None else high,
            )
            if kind != Item.Kind.DECIMAL:  # sliders move in whole steps
                whole.add(item.variable)
        elif kind == Item.Kind.SINGLE:
            found = [_number(c.get("code")) for c in item.choices]
            numbers = [n for n in found if n is not None]  # a text code is no number
            if numbers:
                ranges[item.variable] = (min(numbers), max(numbers))
                if all(n.is_integer() for n in numbers):
                    whole.add(item.variable)
        elif kind == Item.Kind.CALC:
            calculated.append(item)
    for item in calculated:
        ranges[item.variable] = logic.value_range(item.calculation, ranges, whole)
    return ranges


def _item_reaches_codes(item: Item, dtype: str, ranges: dict[str, logic.Range]) -> bool:
    """Whether an answer to ``item``, as its column holds it, could be a missing code
    (between -99 and -92): then the column's codes go to a column of their own. ``ranges``:
    its version's ``_answer_ranges``."""
    kind = item.kind
    if kind == Item.Kind.YESNO:
        return False  # 1/0
    if kind == Item.Kind.SINGLE:
        return _values_reach_codes(c.get("code") for c in item.choices)
    if kind in (Item.Kind.INTEGER, Item.Kind.DECIMAL, Item.Kind.SLIDER, Item.Kind.CALC):
        return _range_reaches_codes(*ranges.get(item.variable, logic.ANY))
    if kind == Item.Kind.DATE:
        return dtype != STRING  # days since enrolment: a date before it is negative
    return True  # free text: any text


def _measure_reaches_codes(measure: derived.DerivedMeasure) -> bool:
    if measure.kind == "binary":
        return False
    if measure.kind == "category":
        return _values_reach_codes(code for code, _label in measure.choices)
    return _range_reaches_codes(measure.minimum, measure.maximum)


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

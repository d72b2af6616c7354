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
   except descriptive items, identifiers (unless ``include_identifiers``: items marked as
   identifiers in any version of any instrument, ``selectors.study_identifier_variables``, so the
   answers given to a version before the mark are left out too) and free text
   (``text``/``notes``, unless ``include_free_text``). Calculated items are included. A
   multiple-choice item becomes one 0/1 column per choice, ``<variable>___<code>`` (REDCap's
   convention). A date answer becomes days since enrolment (no calendar date leaves the app).
   Single choices with whole-number codes are numbers; a variable shared by two instruments
   (``craving`` at baseline and follow-up) is one column.
3. The derived measures registered for the instruments (``surveys.derived``), computed from
   the submitted responses' answers by the same functions the analyses use. A measure named
   like an item variable is ``<name>_derived``.
4. Baseline covariates, if asked for: ``<column>_bl``, the baseline row's value repeated on every
   row of the participant (the baseline wave is the study's first single wave, by due day).

Cells without a value carry a missing code (``surveys.datasets.codes``). Only submitted
responses give values: a draft left in a closed window is a missed wave.

How it runs: participants are taken in batches (in ``pid`` order, so the batches' rows follow
each other in the dataset's order), and each batch is built column by column, never cell by
cell in Python: answers come out of the database one variable per column
(``surveys.datasets.tables``), an item's branching is evaluated once per distinct combination
of the answers it reads, and derived measures are computed on whole columns. ``dataset_batches``
hands the batches out one at a time (an export streams them, holding one batch in memory);
``dataset_long`` is their concatenation. The number of queries depends on the number of
batches and instruments, never on the number of responses.

Each frame carries the columns' metadata in ``frame.attrs["columns"]`` (label, type, value
labels, source instruments and versions, formulas), which the writers and the codebook read.
"""

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict

import numpy as np
import pandas as pd
import pyarrow as pa
from django.db.models import QuerySet

from surveys import derived, logic
from surveys.datasets import codes
from surveys.datasets.pid import date_offset, export_pid
from surveys.datasets.plan import (
    BASELINE_SUFFIX,
    DECIMAL,
    ID_COLUMNS,
    INTEGER,
    ROW_COLUMNS,
    STRING,
    Column,
    Plan,
    Structure,
    select,
)
from surveys.datasets.tables import answers_frame, query_frame, with_ids
from surveys.derived import number
from surveys.models import Assignment, Item, Participant, Response, Study

BATCH_PARTICIPANTS = 5000

__all__ = [
    "BASELINE_SUFFIX",
    "BATCH_PARTICIPANTS",
    "DECIMAL",
    "ID_COLUMNS",
    "INTEGER",
    "ROW_COLUMNS",
    "STRING",
    "Column",
    "dataset_batches",
    "dataset_long",
    "participants_in",
]


def participants_in(study: Study, participants: QuerySet[Participant] | None):
    """The study's participants, narrowed to ``participants`` (a caller's scoped queryset)."""
    found = Participant.objects.filter(study=study)
    if participants is not None:
        found = found.filter(pk__in=participants.values("pk"))
    return found


class Dataset:
    """A long dataset about to be built: its plan, its participants, and its metadata."""

    def __init__(
        self,
        *,
        study: Study,
        participants: QuerySet[Participant] | None = None,
        waves: Iterable | None = None,
        instruments: Iterable | None = None,
        covariates: Iterable[str] = (),
        include_free_text: bool = False,
        include_identifiers: bool = False,
        language: str = "en",
        date_shift: bool = False,
    ):
        self.study = study
        self.covariates = list(covariates)
        structure = Structure.load(study)
        self.structure = structure
        self.scope = participants_in(study, participants)
        selected_waves = select(structure.waves, waves, "waves")
        baseline = structure.baseline_wave() if self.covariates else None
        if self.covariates and baseline is None:
            raise ValueError("the study has no baseline wave to take covariates from")
        self.baseline = baseline
        fetched = {wave.pk for wave in selected_waves} | ({baseline.pk} if baseline else set())
        # (wave, occurrence) pairs anyone in scope has: the wide shape's column groups
        present = set(
            Assignment.objects.filter(participant__in=self.scope.values("pk"), wave_id__in=fetched)
            .order_by()  # not the model's ordering, which DISTINCT would add to the pairs
            .values_list("wave_id", "occurrence")
            .distinct()
        )
        if waves is None:  # a switched-off wave counts only if someone has it
            with_rows = {wave_id for wave_id, _ in present}
            selected_waves = [w for w in selected_waves if w.is_active or w.pk in with_rows]
        all_instruments = {
            i.pk: i for wave in structure.waves for i in structure.wave_instruments[wave.pk]
        }
        selected_instruments = select(list(all_instruments.values()), instruments, "instruments")
        planned_waves = list(selected_waves)
        planned_instruments = list(selected_instruments)
        if baseline is not None:
            if baseline not in planned_waves:
                planned_waves.append(baseline)
            for instrument in structure.wave_instruments[baseline.pk]:
                if instrument not in planned_instruments:
                    planned_instruments.append(instrument)
        self.plan = plan = Plan(
            structure=structure,
            waves=planned_waves,
            instruments=planned_instruments,
            include_identifiers=include_identifiers,
            include_free_text=include_free_text,
            language=language,
            date_shift=date_shift,
        )
        if study.export_id == Study.ExportId.STUDY_ID:
            plan.columns[plan.index["pid"]].label = "Study ID (the study's setting for datasets)"
        if instruments is not None:  # a wave without any of the instruments has no rows
            selected_waves = [w for w in selected_waves if plan.wave_instruments[w.pk]]
        self.selected_waves = selected_waves
        # a wave without any of the chosen instruments has no rows; without an instrument
        # filter every wave has its rows (its status), questions or not
        self.fetched_waves = {
            w.pk for w in planned_waves if instruments is None or plan.wave_instruments[w.pk]
        }
        wanted = {i.slug for i in selected_instruments}
        kept = [
            c
            for c in plan.columns
            if c.role not in ("item", "derived", "version", "missing") or set(c.sources) & wanted
        ]
        # a column of missing codes right after the column whose codes it holds
        owned = {c.missing_column for c in kept if c.missing_column}
        self.keep = []
        for column in kept:
            if column.name in owned:
                continue
            self.keep.append(column)
            if column.missing_column:
                self.keep.append(plan.columns[plan.index[column.missing_column]])
        self.covariate_columns = self._covariate_columns() if self.covariates else []
        wave_slug = {w.pk: w.slug for w in structure.waves}
        returned = {w.pk for w in selected_waves}
        self.groups = sorted(
            ((wave_slug[w], o) for w, o in present if w in returned),
            key=lambda g: (self.wave_position[g[0]], g[1]),
        )
        self.meta = {
            "shape": "long",
            "study": study.slug,
            "waves": [w.slug for w in selected_waves],
            "recurring_waves": [w.slug for w in selected_waves if w.recurrence_days],
            "wave_instruments": {
                w.slug: [i.slug for i in plan.wave_instruments[w.pk] if i.slug in wanted]
                for w in selected_waves
            },
            "covariates": [c.name for c in self.covariate_columns],
            "groups": [list(g) for g in self.groups],
        }
        self.columns_meta = {c.name: asdict(c) for c in self.columns}

    @property
    def wave_position(self) -> dict[str, tuple[int, int]]:
        return {w.slug: (w.position, w.pk) for w in self.structure.waves}

    @property
    def columns(self) -> list[Column]:
        """The columns of the returned frame, in order."""
        keep = list(self.keep)
        if not self.covariate_columns:
            return keep
        return [*keep, *self.covariate_columns]

    def _covariate_columns(self) -> list[Column]:
        plan = self.plan
        self.covariate_sources: list[int] = []
        for name in self.covariates:
            if name in plan.item_columns:
                found = plan.item_columns[name]
            elif name in plan.index and plan.columns[plan.index[name]].role in ("item", "derived"):
                found = [plan.index[name]]
            else:
                raise ValueError(f"unknown covariate {name!r}: not an item or a derived measure")
            self.covariate_sources += [i for i in found if i not in self.covariate_sources]
        added = []
        for index in self.covariate_sources:
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
                        # a column with its codes apart: the baseline value, or empty
                        "missing_column": "",
                    }
                )
            )
        return added

    def row_count(self, *, wide: bool = False) -> int:
        """How many rows the long dataset (or, ``wide``, the wide one) has: counted by the
        database before any row is built."""
        returned = [w.pk for w in self.selected_waves if w.pk in self.fetched_waves]
        found = Assignment.objects.filter(
            participant__in=self.scope.values("pk"), wave_id__in=returned
        )
        if wide:
            return found.order_by().values("participant_id").distinct().count()
        return found.count()

    # --- Batches -------------------------------------------------------------------------

    def people(self, *, only: Iterable[int] | None = None) -> pd.DataFrame:
        """Every participant in scope (or those of them whose pk is in ``only``), in pid
        order: pk, pid, site, enrolment day, time zone, and the date shift (days) of a
        date-shifted export."""
        study = self.study
        scope = self.scope if only is None else with_ids(self.scope, "pk", list(only))
        rows = [
            (
                pk,
                export_pid(study, participant_id=pk, code=code),
                site,
                day,
                tz,
                date_offset(study_id=study.pk, participant_id=pk) if self.plan.date_shift else 0,
                erased is not None,
            )
            for pk, code, site, day, tz, erased in scope.values_list(
                "pk", "code", "site__code", "enrolled_on", "timezone", "answers_erased_at"
            )
        ]
        people = pd.DataFrame(
            rows, columns=["pk", "pid", "site", "enrolled_on", "timezone", "offset", "erased"]
        )
        people["enrolled_on"] = pd.to_datetime(people["enrolled_on"])
        return people.sort_values("pid", kind="stable").reset_index(drop=True)

    def batches(
        self,
        *,
        batch_size: int | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> Iterator[pd.DataFrame]:
        """The dataset's rows, a batch of participants at a time (without ``attrs``);
        ``BATCH_PARTICIPANTS`` at a time unless ``batch_size`` says otherwise."""
        batch_size = batch_size or self.batch_size
        people = self.people()
        total = len(people)
        for start in range(0, max(total, 1), batch_size):
            frame = self.batch_frame(people.iloc[start : start + batch_size])
            if progress is not None:
                progress(min(start + batch_size, total), total)
            yield frame

    @property
    def batch_size(self) -> int:
        return BATCH_PARTICIPANTS

    def batch_frame(self, people: pd.DataFrame) -> pd.DataFrame:
        """The rows of these participants (rows of ``people()``), without ``attrs``."""
        return _BatchBuilder(self, people).frame()

    def empty_frame(self) -> pd.DataFrame:
        """The dataset with no rows: its columns, typed."""
        return self.batch_frame(self.people(only=()))

    def with_attrs(self, frame: pd.DataFrame) -> pd.DataFrame:
        frame.attrs["columns"] = self.columns_meta
        frame.attrs["dataset"] = dict(self.meta)
        return frame


class _BatchBuilder:
    """One batch of participants' rows, filled column by column."""

    def __init__(self, dataset: Dataset, people: pd.DataFrame):
        self.dataset = dataset
        self.plan = dataset.plan
        self.people = people.set_index("pk")

    def frame(self) -> pd.DataFrame:
        """The batch's rows: its assignments read, then each instrument's answers."""
        dataset, plan = self.dataset, self.plan
        rows = self._assignments()
        n = len(rows)
        self.n = n
        self.data: list[np.ndarray] = [
            np.full(n, None, dtype=object) if c.dtype == STRING else np.full(n, np.nan)
            for c in plan.columns
        ]
        if n:
            self._row_columns(rows)
            self._codes(rows)
            for instrument in plan.instruments:
                self._responses(instrument, rows)
        frame = pd.DataFrame(
            {
                c.name: _typed(self.data[plan.index[c.name]], c.dtype)
                for c in dataset.keep
                if c.name in plan.index
            }
        )
        if dataset.covariate_columns:
            frame = self._with_covariates(frame, rows)
        returned = {wave.slug for wave in dataset.selected_waves}
        if n and not frame["wave"].isin(returned).all():
            frame = frame[frame["wave"].isin(returned)].reset_index(drop=True)
        return frame

    def _assignments(self) -> pd.DataFrame:
        dataset = self.dataset
        queryset = with_ids(
            Assignment.objects.filter(wave_id__in=dataset.fetched_waves),
            "participant_id",
            list(self.people.index),
        ).values_list(
            "pk",
            "participant_id",
            "wave_id",
            "occurrence",
            "status",
            "opens_at",
            "completed_at",
            "due_at",
        )
        rows = query_frame(
            queryset,
            [
                "pk",
                "participant",
                "wave",
                "occurrence",
                "status",
                "opens_at",
                "completed_at",
                "due_at",
            ],
            text={"status", "opens_at", "completed_at", "due_at"},
        )
        rows["due_at"] = pd.to_datetime(rows["due_at"], utc=True, format="ISO8601")
        rows["pid"] = rows["participant"].map(self.people["pid"])
        position = {w.pk: w.position for w in dataset.structure.waves}
        rows["_order"] = rows["wave"].map(position)
        # the dataset's order: pid, the waves' order (two waves at one position: the one due
        # first), the occurrence
        rows = rows.sort_values(["pid", "_order", "occurrence", "due_at", "pk"], kind="stable")
        return rows.drop(columns=["_order", "due_at"]).reset_index(drop=True)

    def _set(self, name: str, values) -> None:
        self.data[self.plan.index[name]] = np.asarray(values, dtype=object)

    def _row_columns(self, rows: pd.DataFrame) -> None:
        people, plan = self.people, self.plan
        wave_slug = {w.pk: w.slug for w in self.dataset.structure.waves}
        self._set("pid", rows["pid"])
        self._set("site", rows["participant"].map(people["site"]))
        self._set("wave", rows["wave"].map(wave_slug))
        self.data[plan.index["occurrence"]] = rows["occurrence"].to_numpy(dtype=float)
        self._set("status", rows["status"].map(codes.ROW_STATUSES))
        enrolled = rows["participant"].map(people["enrolled_on"])
        zones = rows["participant"].map(people["timezone"])
        opened = _local_days(rows["opens_at"], zones)
        completed = _local_days(rows["completed_at"], zones)
        self.data[plan.index["days_since_enrolment"]] = (opened - enrolled).dt.days.to_numpy(
            dtype=float, na_value=np.nan
        )
        done = rows["status"] == Assignment.Status.COMPLETED
        days = (completed - opened).dt.days.where(done)
        self.data[plan.index["days_since_window_opened"]] = days.to_numpy(
            dtype=float, na_value=np.nan
        )
        self.enrolled = enrolled
        self.offsets = pd.to_timedelta(rows["participant"].map(people["offset"]), unit="D")
        if plan.date_shift:
            self._set("enrolled_on", _iso(enrolled - self.offsets))
            self._set("window_opened_on", _iso(opened - self.offsets))
            self._set("completed_on", _iso((completed - self.offsets).where(done)))

    def _codes(self, rows: pd.DataFrame) -> None:
        """Every item and derived cell of a row's instruments starts as its status's code."""
        plan = self.plan
        status_code = rows["status"].map(codes.STATUS_CODES).to_numpy(dtype=float)
        # Completed surveys of a participant whose answers were erased at their request: not
        # "shown but not answered", which would count as item non-response.
        erased = rows["participant"].map(self.people["erased"]).fillna(False).to_numpy(bool)
        status_code[erased & (rows["status"] == Assignment.Status.COMPLETED).to_numpy()] = (
            codes.ERASED
        )
        for wave_id, instruments in plan.wave_instruments.items():
            where = np.flatnonzero((rows["wave"] == wave_id).to_numpy())
            if not len(where):
                continue
            numbers = status_code[where]
            texts = np.array([str(int(c)) for c in numbers], dtype=object)
            for instrument in instruments:
                for index in plan.instrument_columns[instrument.pk]:
                    if index in plan.missing_of:
                        continue  # its codes go to its column of missing codes
                    text = plan.columns[index].dtype == STRING
                    self.data[index][where] = texts if text else numbers

    def _answers(self, instrument) -> pd.DataFrame | None:
        """The batch's submitted answers to the instrument (None: no wave of the dataset
        has it)."""
        plan = self.plan
        waves = [w for w, found in plan.wave_instruments.items() if instrument in found]
        if not waves:
            return None
        variables = plan.variables[instrument.pk]
        return answers_frame(
            with_ids(
                Response.objects.filter(
                    assignment__wave_id__in=waves,
                    instrument_id=instrument.pk,
                    status=Response.Status.SUBMITTED,
                ),
                "assignment__participant_id",
                list(self.people.index),
            ).order_by("pk"),
            ["assignment_id", "instrument_version_id"],
            variables,
            text=plan.text_variables,
        )

    def _responses(self, instrument, rows: pd.DataFrame) -> None:
        plan = self.plan
        answers = self._answers(instrument)
        if answers is None:
            return
        row_of = pd.Index(rows["pk"]).get_indexer(answers["assignment_id"])
        answers = answers[row_of >= 0]
        row_of = row_of[row_of >= 0]
        if not len(answers):
            return
        answers = answers.reset_index(drop=True)
        columns = plan.instrument_columns[instrument.pk]
        for index in columns:  # a variable the answered version does not have stays empty
            self.data[index][row_of] = None if plan.columns[index].dtype == STRING else np.nan
        numbers = dict(plan.version_numbers)
        versions = answers["instrument_version_id"].to_numpy()
        self.data[plan.version_column[instrument.pk]][row_of] = [
            numbers.get(v, np.nan) for v in versions
        ]
        enrolled = self.enrolled.to_numpy()[row_of]
        offsets = self.offsets.to_numpy()[row_of]
        for version_id in pd.unique(versions):
            mine = versions == version_id
            self._fill_version(
                version_id, answers[mine], row_of[mine], enrolled[mine], offsets[mine]
            )
        self._fill_derived(instrument, answers, row_of)

    def _fill_version(
        self,
        version_id: int,
        answers: pd.DataFrame,
        rows: np.ndarray,
        enrolled: np.ndarray,
        offsets: np.ndarray,
    ) -> None:
        plan = self.plan
        answers = answers.reset_index(drop=True)
        shown_cache: dict[str, np.ndarray] = {}
        for item, target in plan.ops.get(version_id, ()):
            raw = answers[item.variable] if item.variable in answers else _empty(len(answers))
            blank = _blank(raw, choices=item.kind == Item.Kind.MULTIPLE).to_numpy()
            calculated = item.kind == Item.Kind.CALC
            if calculated:
                # A value the survey pages would now leave blank (logic.calculate): stored before
                # the limit, or not a number at all, it is no measure (and near 1e308 the Stata
                # and SPSS writers refuse it).
                stored = number(answers, item.variable).to_numpy()
                with np.errstate(invalid="ignore"):
                    blank = blank | ~(np.abs(stored) < logic.CALCULATED_LIMIT)
            if blank.any():
                unanswered = codes.NOT_CALCULATED if calculated else codes.NOT_ANSWERED
                if item.branching.strip():
                    if item.branching not in shown_cache:
                        shown_cache[item.branching] = self._shows(item.branching, answers)
                    shown = shown_cache[item.branching]
                    code = np.where(shown, unanswered, codes.NOT_SHOWN).astype(float)
                else:
                    code = np.full(len(answers), float(unanswered))
            if isinstance(target, list):  # a multiple choice: one 0/1 column per choice
                # each distinct answer read once (a few dozen combinations in thousands)
                # (cells are JSON text, read from the database as text: hashable)
                found, uniques = pd.factorize(raw.astype(object), use_na_sentinel=True)
                chosen = [_choice_set(v) for v in uniques]
                for index, choice in target:
                    hit = np.array([float(choice in c) if c else 0.0 for c in chosen] + [0.0])
                    column = hit[found]  # -1 (no answer): the 0.0 at the end
                    self._put(index, rows, np.where(blank, code, column) if blank.any() else column)
                continue
            dtype = plan.columns[target].dtype
            if item.kind == Item.Kind.DATE:
                days = pd.to_datetime(raw, format="%Y-%m-%d", errors="coerce")
                if plan.date_shift:  # the date, moved back by the participant's offset
                    values = _iso(days - offsets).to_numpy(dtype=object)
                else:
                    values = (days - pd.to_datetime(enrolled)).dt.days.to_numpy(
                        dtype=float, na_value=np.nan
                    )
                    if dtype == STRING:
                        values = _whole_text(values)
            elif dtype == STRING:
                values = _text_values(raw)
            elif calculated:
                values = stored
            else:
                values = (
                    number(answers, item.variable).to_numpy()
                    if item.variable in answers
                    else (np.full(len(answers), np.nan))
                )
            if blank.any():
                apart = plan.missing_of.get(target)
                if apart is not None:  # the code to its own column, the cell left empty
                    self._put(apart, rows, np.where(blank, code, np.nan))
                    values = np.where(blank, None if dtype == STRING else np.nan, values)
                elif dtype == STRING:
                    values = np.where(blank, _whole_text(code), values)
                else:
                    values = np.where(blank, code, values)
            self._put(target, rows, values)

    def _put(self, index: int, rows: np.ndarray, values) -> None:
        self.data[index][rows] = values

    def _shows(self, expression: str, answers: pd.DataFrame) -> np.ndarray:
        """Whether an item with this branching is shown, for every response: evaluated once per
        distinct combination of the answers the expression reads (with ``surveys.logic``, the
        same evaluation as the survey pages)."""
        names = list(
            dict.fromkeys(name for name, _, _ in logic.fields_used(logic.parse(expression)))
        )
        if not names:
            return np.full(len(answers), logic.shows(expression, {}))
        factorized = []
        for name in names:
            column = answers[name] if name in answers else _empty(len(answers))
            if column.dtype.kind not in "biuf":
                column = column.astype(object)
            found, uniques = pd.factorize(column, use_na_sentinel=True)
            factorized.append((name, found, list(uniques)))
        # One whole number per row for its combination of answers (NaN is code -1).
        key, size = np.zeros(len(answers), dtype=np.int64), 1
        for _, found, uniques in factorized:
            key = key * (len(uniques) + 1) + (found + 1)
            size *= len(uniques) + 1
        if size < 2**62:
            unique_keys, inverse = np.unique(key, return_inverse=True)
            combos = []
            for value in unique_keys.tolist():
                combo = []
                for _, _, uniques in reversed(factorized):
                    value, code = divmod(value, len(uniques) + 1)
                    combo.append(code - 1)
                combos.append(combo[::-1])
        else:  # too many distinct answers for one number: compare the rows of codes
            keys = np.stack([found for _, found, _ in factorized], axis=1)
            combos, inverse = np.unique(keys, axis=0, return_inverse=True)
        results = np.empty(len(combos), dtype=bool)
        multiple = self.plan.multiple_variables
        for n, combo in enumerate(combos):
            values = {}
            for (name, _, uniques), code in zip(factorized, combo, strict=True):
                if code < 0:
                    continue
                value = uniques[code]
                values[name] = _choice_list(value) if name in multiple else _logic_value(value)
            results[n] = logic.shows(expression, values)
        return results[inverse.reshape(-1)]

    def _fill_derived(self, instrument, answers: pd.DataFrame, rows: np.ndarray) -> None:
        plan = self.plan
        for measure, index in plan.derived.get(instrument.pk, ()):
            values = derived.computed(measure, answers)
            if plan.columns[index].dtype == STRING:
                values = (
                    values.astype(object)
                    .where(values.notna(), None)
                    .map(lambda v: v if v is None else str(v))
                )
                self._put(index, rows, values.to_numpy(dtype=object))
            else:
                self._put(index, rows, values.astype("float64").to_numpy())

    def _with_covariates(self, frame: pd.DataFrame, rows: pd.DataFrame) -> pd.DataFrame:
        dataset, plan = self.dataset, self.plan
        baseline = dataset.baseline
        sources = [plan.columns[i] for i in dataset.covariate_sources]
        base_rows = (rows["wave"] == baseline.pk) & (rows["occurrence"] == 0)
        base = pd.DataFrame(
            {
                f"{c.name}{BASELINE_SUFFIX}": _typed(
                    self.data[plan.index[c.name]][base_rows.to_numpy()], c.dtype
                )
                for c in sources
            }
        )
        base.index = pd.Index(rows.loc[base_rows, "pid"].to_numpy(), dtype="string")
        base = base[~base.index.duplicated(keep="first")]
        joined = frame.join(base, on="pid")
        for column in dataset.covariate_columns:  # a participant without a baseline row
            joined[column.name] = _typed(
                joined[column.name].to_numpy(dtype=object, na_value=None), column.dtype
            )
        return joined


def _empty(n: int) -> pd.Series:
    return pd.Series([None] * n, dtype=object)


def _blank(raw: pd.Series, *, choices: bool = False) -> pd.Series:
    """``surveys.validation.answer_blank`` for a whole column: no value, empty or blank text,
    and for a multiple choice (``choices``) an empty list."""
    if raw.dtype.kind in "biuf":
        return raw.isna()
    text = raw.astype(object)
    stripped = text.map(lambda v: v.strip() if isinstance(v, str) else v)
    return text.isna() | stripped.isin(["", "[]"] if choices else [""])


def _choice_set(value) -> set[str] | None:
    chosen = _choice_list(value)
    return None if chosen is None else {str(v) for v in chosen}


def _choice_list(value):
    """A multiple choice's answer (JSON text of a list) as a list; other text as one choice."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, list):
        return value
    try:
        found = json.loads(value) if isinstance(value, str) else value
    except ValueError:
        return [value]
    return found if isinstance(found, list) else [found]


def _logic_value(value):
    """A cell as the survey pages' logic reads an answer: whole floats as ints."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, np.generic):
        return value.item()
    return value


def _text_values(raw: pd.Series) -> np.ndarray:
    """Answers of a text column as text: numbers as written (whole ones without ".0")."""
    out = raw.astype(object).to_numpy()
    return np.array(
        [
            None
            if v is None or (isinstance(v, float) and np.isnan(v))
            else (str(int(v)) if isinstance(v, float) and v.is_integer() else str(v))
            for v in out
        ],
        dtype=object,
    )


def _whole_text(values: np.ndarray) -> np.ndarray:
    return np.array(
        [None if np.isnan(v) else str(int(v)) for v in values.astype(float)], dtype=object
    )


def _iso(days: pd.Series) -> pd.Series:
    """Days as ISO text (None for none)."""
    text = days.dt.strftime("%Y-%m-%d")
    return text.astype(object).where(days.notna(), None)


def _local_days(stamps: pd.Series, zones: pd.Series) -> pd.Series:
    """Each UTC time's calendar day in its participant's time zone (midnight, naive)."""
    parsed = pd.to_datetime(stamps, utc=True, format="ISO8601")
    days = pd.Series(pd.NaT, index=stamps.index, dtype="datetime64[ns]")
    for zone in pd.unique(zones):
        mask = (zones == zone).to_numpy()
        local = parsed[mask].dt.tz_convert(zone).dt.tz_localize(None).dt.normalize()
        days[mask] = local.astype("datetime64[ns]")
    return days


def _typed(values: np.ndarray, dtype: str):
    """A filled column as its nullable pandas type (a whole-number column holding a fraction
    becomes decimal rather than losing it). Made from the arrays directly: ``pd.array`` looks
    at every cell, and a batch has hundreds of columns."""
    if dtype == STRING:
        try:  # text and None only (what the builder fills text columns with)
            text = pa.array(values, type=pa.large_string(), from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            return pd.array(values, dtype="string")
        return pd.arrays.ArrowStringArray(text)
    numbers = np.asarray(values, dtype=float)
    empty = np.isnan(numbers)
    if dtype == INTEGER:
        finite = numbers[~empty]
        if np.all(finite == np.floor(finite)) and np.all(np.abs(finite) < 2.0**63):
            return pd.arrays.IntegerArray(np.where(empty, 0, numbers).astype("int64"), empty)
    return pd.arrays.FloatingArray(np.where(empty, 0.0, numbers), empty)


def dataset_batches(
    *,
    batch_size: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    **options,
) -> tuple[Dataset, Iterator[pd.DataFrame]]:
    """The dataset (its plan and metadata) and its rows a batch of participants at a time, for
    writers that stream. ``options`` are ``dataset_long``'s."""
    dataset = Dataset(**options)
    return dataset, dataset.batches(batch_size=batch_size, progress=progress)


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
    date_shift: bool = False,
    batch_size: int | None = None,
) -> pd.DataFrame:
    """The study's long dataset (see the module docstring for its columns and codes).

    ``participants`` is the caller's scope (already filtered to what the user may see);
    ``waves`` and ``instruments`` are slugs (or objects) to keep, in the study's order;
    ``covariates`` are variables (item variables or column names) whose baseline values are
    repeated on every row as ``<column>_bl``; ``date_shift`` adds calendar dates
    (``enrolled_on``, ``window_opened_on``, ``completed_on``, and date answers instead of days
    since enrolment), each participant's moved back by one keyed offset of 0-364 days.
    """
    dataset = Dataset(
        study=study,
        participants=participants,
        waves=waves,
        instruments=instruments,
        covariates=covariates,
        include_free_text=include_free_text,
        include_identifiers=include_identifiers,
        language=language,
        date_shift=date_shift,
    )
    frames = list(dataset.batches(batch_size=batch_size))
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    return dataset.with_attrs(frame)

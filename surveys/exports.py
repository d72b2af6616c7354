"""Dataset exports: the one dataset builder (surveys.datasets), scoped to what the user may
see, filtered, written as CSV a block at a time, and audited (who, when, filters, shape,
format, rows, identified or not). The admin page and ``manage.py export_dataset`` both call
``dataset_export``.

Formats: CSV (streamed as it is written), Excel, SPSS, Stata and Parquet (written to a private
temporary file, then streamed). De-identified by default (pseudonymous IDs, no identifier items,
no free text, days instead of dates); an identified export (study IDs, identifier items, free
text; never contact details) is for principal investigators, with a typed reason, and is audited
as such.

A de-identified long or wide CSV goes through the kept lines (``surveys.datasets.linecache``):
only participants whose data changed since the last export of the same plan are built again.

Background exports: a scope of ``settings.EXPORT_BACKGROUND_PARTICIPANTS`` people or more is not
streamed but queued (``export_job_start``) as a ``DatasetExportJob``; a Celery task runs
``export_job_run``, which writes the same ``dataset_export`` to a private file under
``settings.EXPORT_ROOT`` and records its progress. Only the job's creator downloads the file
(``export_job_download``, audited), until it expires (``export_jobs_expire``).
"""

import logging
import os
import re
import secrets
import shutil
import tempfile
import traceback
from collections.abc import Callable, Iterable, Iterator
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, fields
from datetime import date, timedelta
from pathlib import Path
from typing import BinaryIO

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import transaction
from django.db.models import Q, QuerySet
from django.http import Http404
from django.utils import timezone

from surveys import selectors
from surveys.audit import audit_log
from surveys.datasets import (
    codebook,
    csv_rows,
    dataset_diary,
    dataset_long,
    dataset_wide,
    linecache,
)
from surveys.datasets.builder import Dataset
from surveys.datasets.formats import FORMATS as FILE_FORMATS
from surveys.datasets.formats import write_dataset
from surveys.datasets.pid import export_pid
from surveys.datasets.writers import csv_lines, header_line
from surveys.models import (
    AuditEvent,
    DatasetExportJob,
    DatasetLinePlan,
    Instrument,
    Participant,
    Study,
)

logger = logging.getLogger(__name__)

SHAPES = ("long", "wide", "diary", "codebook")
DATES = ("days", "shifted")
FORMATS = tuple(FILE_FORMATS)
# What a finished job's file may be served as.
FILE_MEDIA_TYPES = tuple(dict.fromkeys(media for media, _ in FILE_FORMATS.values()))
# A page of the codebook for reading in a browser; the other shapes are data, not documents.
HTML_SHAPES = ("codebook",)

Progress = Callable[[int], None]


def export_instruments(study: Study):
    """The instruments an export can be narrowed to: those of the study's waves."""
    return Instrument.objects.filter(study=study, waves__study=study).distinct().order_by("slug")


@dataclass(frozen=True)
class ExportSpec:
    shape: str = "long"
    format: str = "csv"
    labels: bool = False  # value labels instead of codes
    sites: tuple[str, ...] = ()  # site codes; empty: every site the user may see
    waves: tuple[str, ...] = ()  # wave slugs; empty: all
    instruments: tuple[str, ...] = ()  # instrument slugs; empty: all
    statuses: tuple[str, ...] = ()  # participant statuses; empty: all
    enrolled_from: date | None = None
    enrolled_to: date | None = None
    covariates: tuple[str, ...] = field(default_factory=tuple)
    # "days": intervals only (days since enrolment); "shifted": calendar dates as well, each
    # participant's moved back by one keyed offset of 0-364 days (intervals hold).
    dates: str = "days"
    # Principal investigators only, with a typed reason: the study ID beside pid, answers to
    # items marked as identifiers and free text. Never contact details.
    identified: bool = False
    reason: str = ""

    def validate(self, *, study: Study) -> None:
        errors = {}
        if self.shape not in SHAPES:
            errors["shape"] = f"Choose one of: {', '.join(SHAPES)}."
        if self.format == "html" and self.shape not in HTML_SHAPES:
            errors["format"] = (
                "HTML is for the codebook only: choose the codebook, or another format "
                "for the data."
            )
        elif self.format not in FORMATS:
            errors["format"] = f"Choose one of: {', '.join(FORMATS)}."
        elif self.labels and self.format != "csv":
            # Asked for and not done would be a file quietly unlike the one asked for (found
            # by review): the other formats carry the labels their own way.
            errors["labels"] = (
                "Value labels instead of codes are for CSV files. SPSS and Stata files carry "
                "the codes with their labels; an Excel file's codebook sheet lists them."
            )
        unknown = set(self.sites) - set(study.sites.values_list("code", flat=True))
        if unknown:
            errors["sites"] = f"Not sites of this study: {', '.join(sorted(unknown))}."
        unknown = set(self.waves) - set(study.waves.values_list("slug", flat=True))
        if unknown:
            errors["waves"] = f"Not waves of this study: {', '.join(sorted(unknown))}."
        unknown = set(self.instruments) - set(
            export_instruments(study).values_list("slug", flat=True)
        )
        if unknown:
            errors["instruments"] = (
                f"Not instruments of this study's waves: {', '.join(sorted(unknown))}."
            )
        if self.dates not in DATES:
            errors["dates"] = f"Choose one of: {', '.join(DATES)}."
        unknown = set(self.statuses) - set(Participant.Status.values)
        if unknown:
            errors["statuses"] = f"Unknown statuses: {', '.join(sorted(unknown))}."
        if self.enrolled_from and self.enrolled_to and self.enrolled_from > self.enrolled_to:
            errors["enrolled_to"] = "The end of the enrolment range is before its start."
        if errors:
            raise ValidationError(errors)

    def to_dict(self) -> dict:
        """JSON-ready: tuples as lists, dates as ISO text (a job's ``spec``, the audit log)."""
        return {
            key: value.isoformat()
            if isinstance(value, date)
            else list(value)
            if isinstance(value, tuple)
            else value
            for key, value in asdict(self).items()
        }

    @classmethod
    def from_dict(cls, data: dict) -> "ExportSpec":
        """The spec ``to_dict`` gave (a job's, stored). Unknown options are refused rather than
        dropped: an export must never quietly differ from the one asked for."""
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise ValidationError(
                {"spec": f"Unknown export options: {', '.join(sorted(unknown))}."}
            )
        values = dict(data)
        for name in ("sites", "waves", "instruments", "statuses", "covariates"):
            if name in values:
                values[name] = tuple(values[name] or ())
        for name in ("enrolled_from", "enrolled_to"):
            if values.get(name):
                values[name] = date.fromisoformat(values[name])
        return cls(**values)


@dataclass
class Export:
    filename: str
    rows: int
    chunks: Iterator[str] | Iterator[bytes]
    content_type: str = "text/csv; charset=utf-8"


FILE_CHUNK = 64 * 1024
TEMP_PREFIX = "export-"


# Progress of an export as a background job: the dataset built, then its file written.
BUILT, FILE_WRITTEN, LAST = 10, 90, 99


def _file_chunks(frame, fmt: str, study: Study, progress: Progress | None) -> Iterator[bytes]:
    """Write the file to a private temporary file, then give it out in blocks and remove it
    (the statistics packages' formats need a file, not a stream)."""
    # Under EXPORT_ROOT (private), never the system's temporary folder: a worker killed here
    # leaves the folder where the sweep finds it.
    with tempfile.TemporaryDirectory(prefix=TEMP_PREFIX, dir=export_root()) as folder:
        path = Path(folder) / f"dataset.{fmt}"
        write_dataset(frame, path, fmt, study=study)
        size, given = path.stat().st_size or 1, 0
        if progress is not None:
            progress(FILE_WRITTEN)
        with path.open("rb") as handle:
            while block := handle.read(FILE_CHUNK):
                yield block
                given += len(block)
                if progress is not None:
                    progress(FILE_WRITTEN + (LAST - FILE_WRITTEN) * given // size)


def _csv_progress(chunks: Iterable[str], *, rows: int, progress: Progress) -> Iterator[str]:
    """The CSV blocks, reporting the share of rows written so far (lines counted; a line
    break inside a quoted answer only makes the estimate run ahead, never past ``LAST``)."""
    lines = -1  # the header
    for chunk in chunks:
        yield chunk
        lines += chunk.count("\n")
        done = min(max(lines, 0), rows) / rows if rows else 1
        progress(BUILT + int((LAST - BUILT) * done))


def export_participants(*, user, study: Study, spec: ExportSpec):
    """The participants of ``study`` the user may see, narrowed by the spec's filters."""
    if user is None:  # manage.py: the whole study
        people = Participant.objects.filter(study=study)
    else:
        people = selectors.participants_for_user(user=user).filter(study=study)
    return _narrowed(people, spec)


def _narrowed(people, spec: ExportSpec):
    if spec.sites:
        people = people.filter(site__code__in=spec.sites)
    if spec.statuses:
        people = people.filter(status__in=spec.statuses)
    if spec.enrolled_from:
        people = people.filter(enrolled_on__gte=spec.enrolled_from)
    if spec.enrolled_to:
        people = people.filter(enrolled_on__lte=spec.enrolled_to)
    return people


MIN_REASON = 10


def _study_ids(*, study: Study, people) -> dict[str, str]:
    """pid -> study ID, for identified exports."""
    return {
        export_pid(study, participant_id=pk, code=code): code
        for pk, code in people.values_list("pk", "code")
    }


def _study_ids_add(frame, ids: dict[str, str]) -> None:
    """The study ID beside each pid (identified exports only)."""
    frame.insert(1, "study_id", frame["pid"].map(ids).astype("string"))
    frame.attrs.setdefault("columns", {})["study_id"] = {
        "name": "study_id",
        "label": "Study ID (identified export)",
        "dtype": "string",
        "role": "id",
    }


def export_check(*, user, study: Study, spec: ExportSpec) -> None:
    """Whether ``user`` may make this export: a role in the study, a valid spec, and for an
    identified export a principal investigator with a reason. Raises ``ValidationError``.
    The one check of a streamed export and of a background job (when queued and when run)."""
    if user is not None and not user.is_active:
        raise ValidationError("This staff account is deactivated.")
    if user is not None and not selectors.studies_for_user(user=user).filter(pk=study.pk).exists():
        raise ValidationError("You have no role in this study.")
    spec.validate(study=study)
    if spec.identified:
        if user is None or not selectors.studies_led_by(user=user).filter(pk=study.pk).exists():
            raise ValidationError(
                {"identified": "Only the study's principal investigators export identified data."}
            )
        if len(spec.reason.strip()) < MIN_REASON:
            raise ValidationError({"reason": "Say why identified data is needed (a sentence)."})


def dataset_export(
    *,
    user,
    study: Study,
    spec: ExportSpec,
    request=None,
    progress: Progress | None = None,
    job_id: int | None = None,
) -> Export:
    """Build the dataset the spec asks for and audit it; the CSV text comes from
    ``Export.chunks``. ``user=None`` is ``manage.py`` (the whole study, audited as such).
    ``progress`` (a background job's) hears per cent done: ``BUILT`` once the dataset is
    built, then up to ``LAST`` as ``chunks`` are consumed."""
    export_check(user=user, study=study, spec=spec)
    people = export_participants(user=user, study=study, spec=spec)
    ids = _study_ids(study=study, people=people) if spec.identified else None
    options = _dataset_options(study=study, people=people, spec=spec)
    if spec.format == "csv" and spec.shape in ("long", "wide"):
        # Streamed a batch of participants at a time: memory stays flat however big the study.
        dataset = Dataset(**options)
        rows = dataset.row_count(wide=spec.shape == "wide")
        columns = None
        recipe = _recipe(spec, sites=_recipe_sites(user=user, study=study))
        chunks = _batched_csv(dataset, spec=spec, ids=ids, progress=progress, recipe=recipe)
    else:
        if spec.shape == "diary":
            frame = dataset_diary(
                study=study, participants=people, date_shift=spec.dates == "shifted"
            )
        else:
            frame = dataset_long(**options)
            if spec.shape == "wide":
                frame = dataset_wide(frame)
            elif spec.shape == "codebook":
                frame = codebook(study, frame)
        if ids is not None and "pid" in frame.columns:
            _study_ids_add(frame, ids)
        if progress is not None:
            progress(BUILT)
        rows, columns = len(frame), len(frame.columns)
        if spec.format == "csv":
            chunks = csv_rows(frame, labels=spec.labels)
            if progress is not None:
                chunks = _csv_progress(chunks, rows=len(frame), progress=progress)
        else:
            chunks = _file_chunks(frame, spec.format, study, progress)
    details = {
        **spec.to_dict(),
        "rows": rows,
        "identified": spec.identified,
        "by": "manage.py" if user is None else "",
    }
    if job_id is not None:
        details["job"] = job_id  # links the export to its downloads
    if columns is not None:
        details["columns"] = columns
    audit_log(
        action=AuditEvent.Action.DATASET_EXPORT,
        user=user,
        request=request,
        study=study,
        details=details,
    )
    stamp = timezone.localdate().isoformat()
    content_type, extension = FILE_FORMATS[spec.format]
    marked = "_IDENTIFIED" if spec.identified else ""
    return Export(
        filename=f"{study.slug}_{spec.shape}{marked}_{stamp}.{extension}",
        rows=rows,
        chunks=chunks,
        content_type=content_type,
    )


def _dataset_options(*, study: Study, people, spec: ExportSpec) -> dict:
    """``Dataset``'s options for the spec, over these participants."""
    return {
        "study": study,
        "participants": people,
        "waves": list(spec.waves) or None,
        "instruments": list(spec.instruments) or None,
        "covariates": spec.covariates,
        "include_identifiers": spec.identified,
        "include_free_text": spec.identified,
        "date_shift": spec.dates == "shifted",
    }


# What a plan's recipe keeps of an export's spec: the options that shape the dataset. Not the
# file's format, nor an identified export's reason (an identified export keeps no lines).
_RECIPE_OPTIONS = (
    "shape",
    "labels",
    "sites",
    "waves",
    "instruments",
    "statuses",
    "enrolled_from",
    "enrolled_to",
    "covariates",
    "dates",
)


def _recipe(spec: ExportSpec, *, sites: list[int] | None) -> dict:
    """How to build the dataset of a de-identified CSV export again (a plan's ``recipe``):
    its options, and the pks of the sites its user saw (None: every site)."""
    options = spec.to_dict()
    return {"spec": {name: options[name] for name in _RECIPE_OPTIONS}, "sites": sites}


def _recipe_sites(*, user, study: Study) -> list[int] | None:
    """The pks of the study's sites the user sees (None: every site, now and later)."""
    if user is None or user.is_superuser:
        return None
    return sorted(
        selectors.sites_for_user(user=user).filter(study=study).values_list("pk", flat=True)
    )


def _batched_csv(
    dataset: Dataset,
    *,
    spec: ExportSpec,
    ids: dict | None,
    progress: Progress | None,
    recipe: dict | None = None,
) -> Iterator[str]:
    """The long or wide CSV, one batch of participants at a time: the header line once, then
    each batch's lines. The wide columns are fixed up front (every wave and occurrence anyone
    in scope has), so every batch has the same ones."""

    def heard(done: int, total: int) -> None:
        if progress is not None:
            progress(BUILT + (LAST - BUILT) * done // max(total, 1))

    if progress is not None:
        progress(BUILT)  # planned; the rows are built batch by batch as they are written
    if ids is None and settings.EXPORT_LINE_CACHE:  # de-identified: reuse unchanged lines
        yield from _kept_csv(dataset, spec=spec, progress=heard, recipe=recipe)
        return
    header = True
    for batch in dataset.batches(progress=heard):
        frame = dataset.with_attrs(batch)
        if spec.shape == "wide":
            frame = dataset_wide(frame)
        if ids is not None:
            _study_ids_add(frame, ids)
        yield from csv_rows(frame, labels=spec.labels, header=header)
        header = False


def _lines_of(dataset: Dataset, spec: ExportSpec) -> Callable:
    """A batch's long frame → its CSV text (no header) and the pid of each line."""

    def lines_of(batch) -> tuple[str, list[str]]:
        frame = dataset.with_attrs(batch)
        if spec.shape == "wide":
            frame = dataset_wide(frame)
        return csv_lines(frame, labels=spec.labels), frame["pid"].tolist()

    return lines_of


def _kept_csv(
    dataset: Dataset, *, spec: ExportSpec, progress, recipe: dict | None = None
) -> Iterator[str]:
    """``_batched_csv`` through the kept lines (``surveys.datasets.linecache``): the lines of
    participants whose data changed are built and kept, then everyone's are read back in
    order. The same text as building them all. ``recipe`` (how to build this dataset again)
    is kept with the plan, for ``export_lines_warm``."""
    plan = linecache.plan_for(dataset, shape=spec.shape, labels=spec.labels, recipe=recipe)
    if not plan.header:  # the plan's key covers every column, so its header never changes
        empty = dataset.with_attrs(dataset.empty_frame())
        header = header_line((dataset_wide(empty) if spec.shape == "wide" else empty).columns)
        linecache.header_keep(plan, header)
    yield plan.header
    stale = linecache.stale_participants(dataset, plan)
    lines_of = _lines_of(dataset, spec)
    try:
        with linecache.plan_lock(plan):  # held or not, the export builds what it needs
            linecache.refresh(dataset, plan, stale, lines_of=lines_of, progress=progress)
    except linecache.LinesKeptChanging:
        # Someone's data changed each time their lines were built: every line is built for
        # this export instead (only the header is out yet); the next one keeps them.
        for batch in dataset.batches(progress=progress):
            yield lines_of(batch)[0]
        return
    yield from linecache.kept_lines(dataset, plan)


def export_lines_warm(*, now=None) -> dict[str, int]:
    """Keep the kept lines of recent exports current, so that the next export of the same
    options finds them ready (the beat runs this every few minutes).

    For every plan an export used in the last ``linecache.PLAN_UNUSED_DAYS`` days, the
    dataset its last export asked for (its options and its user's sites, the plan's
    ``recipe``) is planned again: the lines of participants whose data changed since are
    built and kept. If the dataset's plan is no longer the same (the study's design or the
    software changed, or a new wave appeared in scope), its lines are built under the new plan,
    which carries the recipe on; the old one is no longer kept current and expires unused.
    Nothing leaves the database: no file, no audit event. One warm-up at a time: a run that
    finds another still running does nothing ("skipped")."""
    if not settings.EXPORT_LINE_CACHE:
        return {"plans": 0, "participants": 0, "failed": 0, "skipped": 0}
    with linecache.warm_lock() as mine:
        if not mine:
            return {"plans": 0, "participants": 0, "failed": 0, "skipped": 1}
        return _warm(now or timezone.now())


def _warm(now) -> dict[str, int]:
    done = built = failed = 0
    ready: set[int] = set()
    if settings.EXPORT_LINES_READY:
        for study in Study.objects.filter(participants__isnull=False).distinct().order_by("pk"):
            for spec in READY_SPECS:
                try:
                    plan_id, count = _ready_warm(study, spec, now=now)
                except SoftTimeLimitExceeded:
                    raise
                except Exception as exc:
                    _warm_failure_log(
                        f"keeping the {spec.shape} CSV of study {study.pk} ready", exc
                    )
                    failed += 1
                    continue
                if plan_id is None:
                    continue
                ready.add(plan_id)
                built += count
                done += 1
    since = now - timedelta(days=linecache.PLAN_UNUSED_DAYS)
    plans = (
        DatasetLinePlan.objects.filter(used_at__gte=since)
        .exclude(recipe={})
        .exclude(pk__in=ready)
        .select_related("study")
        .order_by("-used_at", "pk")
    )
    for plan in plans:
        with linecache.plan_lock(plan) as mine:
            if not mine:  # an export or another warm-up is at it
                continue
            try:
                dataset, spec, current = _recipe_dataset(plan)
                # a new plan (the recipe moved to it): an export may be building it already
                lock = linecache.plan_lock(current) if current.pk != plan.pk else nullcontext(True)
                with lock as also_mine:
                    if also_mine:
                        built += _refresh(dataset, current, spec)
                        done += 1
            except _RecipeStale as exc:
                # Names the plan and the kind of mismatch only: no option's value is logged.
                logger.info(
                    "kept lines of plan %s no longer kept current: its recipe no longer fits (%s)",
                    plan.pk,
                    type(exc.__cause__).__name__,
                )
                DatasetLinePlan.objects.filter(pk=plan.pk).update(recipe={})
            except SoftTimeLimitExceeded:
                raise
            except Exception as exc:
                _warm_failure_log(f"keeping the lines of plan {plan.pk} current", exc)
                failed += 1
    return {"plans": done, "participants": built, "failed": failed, "skipped": 0}


def _warm_failure_log(what: str, exc: Exception) -> None:
    # The type and the frames (file, line, code), not the message: it could quote a cell.
    logger.error(
        "%s failed with %s at:\n%s",
        what,
        type(exc).__name__,
        "".join(traceback.format_tb(exc.__traceback__)),
    )


# Kept ready for every study (``EXPORT_LINES_READY``): the exports a researcher makes first.
READY_SPECS = (ExportSpec(shape="wide"), ExportSpec(shape="long"))


def _ready_warm(study: Study, spec: ExportSpec, *, now) -> tuple[int | None, int]:
    """Build the changed lines of the study's whole-study export ``spec``; its plan is marked
    used (kept ready, it never expires). (None, 0) if an export or another warm-up holds it."""
    people = _narrowed(Participant.objects.filter(study=study), spec)
    dataset = Dataset(**_dataset_options(study=study, people=people, spec=spec))
    recipe = _recipe(spec, sites=None)
    plan = linecache.plan_for(
        dataset, shape=spec.shape, labels=spec.labels, recipe=recipe, used_at=now
    )
    with linecache.plan_lock(plan) as mine:
        if not mine:
            return None, 0
        return plan.pk, _refresh(dataset, plan, spec)


def _refresh(dataset: Dataset, plan: DatasetLinePlan, spec: ExportSpec) -> int:
    stale = linecache.stale_participants(dataset, plan)
    count = linecache.refresh(dataset, plan, stale, lines_of=_lines_of(dataset, spec))
    DatasetLinePlan.objects.filter(pk=plan.pk).update(warmed_at=timezone.now())
    return count


class _RecipeStale(Exception):
    """A plan's recipe no longer describes an export of its study (a site, wave or option it
    names is gone); raised from the error that said so."""


def _recipe_dataset(plan: DatasetLinePlan) -> tuple[Dataset, ExportSpec, DatasetLinePlan]:
    """The dataset the plan's recipe asks for, its spec, and the plan of that dataset now:
    the plan itself, or a new one (the study's design or the software changed), which the
    recipe moves to. ``_RecipeStale`` if the recipe no longer fits the study."""
    recipe = plan.recipe
    try:
        spec = ExportSpec.from_dict(recipe["spec"])
        sites = recipe.get("sites")
        if sites is not None and not all(isinstance(pk, int) for pk in sites):
            raise TypeError("a site of the recipe is not a site's id")
    except (KeyError, TypeError, ValueError, ValidationError) as exc:  # not a recipe now
        raise _RecipeStale from exc
    try:
        spec.validate(study=plan.study)  # a site or wave it names is gone
    except ValidationError as exc:
        raise _RecipeStale from exc
    people = Participant.objects.filter(study=plan.study)
    if sites is not None:
        people = people.filter(site_id__in=sites)
    dataset = Dataset(
        **_dataset_options(study=plan.study, people=_narrowed(people, spec), spec=spec)
    )
    current = linecache.plan_for(
        dataset, shape=spec.shape, labels=spec.labels, recipe=recipe, used_at=plan.used_at
    )
    if current.pk != plan.pk:
        DatasetLinePlan.objects.filter(pk=plan.pk).update(recipe={})
    return dataset, spec, current


# --- Background exports ---------------------------------------------------------------------

JobStatus = DatasetExportJob.Status
# The name a job's file is stored under (random; made by export_job_run, never by a user).
_STORED_NAME = re.compile(r"^[A-Za-z0-9_-]{20,64}\.[a-z0-9]{1,8}$")


class ExportNotReady(Exception):
    """The job has no file (yet): queued, running or failed."""


class ExportGone(Exception):
    """The job's file was deleted (its download window is over), or is no longer its
    creator's to download (their rights changed)."""


class ExportFailed(Exception):
    """The job failed: there is no file, and there will be none."""


def export_should_run_in_background(people_count: int) -> bool:
    return people_count >= settings.EXPORT_BACKGROUND_PARTICIPANTS


def export_jobs_for_user(*, user) -> QuerySet[DatasetExportJob]:
    """The jobs ``user`` made, in studies where they still have a role: a job is its
    creator's alone (not even the study's other staff or a superuser see its file)."""
    return DatasetExportJob.objects.filter(
        created_by=user, study__in=selectors.studies_for_user(user=user)
    ).select_related("study")


def export_root() -> Path:
    """``settings.EXPORT_ROOT``, made if it is not there yet, and private (0700)."""
    root = Path(settings.EXPORT_ROOT)
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    if root.stat().st_mode & 0o077:
        try:
            root.chmod(0o700)
        except PermissionError:  # a folder mounted by someone else: its files are still 0600
            logger.warning("EXPORT_ROOT %s is readable by others; make it 0700", root)
    return root


def _stored_file(job: DatasetExportJob) -> Path | None:
    if not job.path or not _STORED_NAME.match(job.path):
        return None
    return Path(settings.EXPORT_ROOT) / job.path


def _remove_file(job: DatasetExportJob) -> None:
    path = _stored_file(job)
    if path is not None:
        path.unlink(missing_ok=True)


class ExportBusy(ValidationError):
    """One of the user's exports of the study is still being prepared (``job``): one at a
    time each."""

    def __init__(self, job: DatasetExportJob):
        super().__init__(
            {
                NON_FIELD_ERRORS: "One of your exports of this study is still being prepared: "
                "wait for it to finish (its page shows the progress) before starting another."
            }
        )
        self.job = job


@transaction.atomic
def export_job_start(*, user, study: Study, spec: ExportSpec, request=None) -> DatasetExportJob:
    """Check the export as ``dataset_export`` would, record it as a queued job and queue the
    task after commit with the job's id alone (no participant data goes through the broker).
    The export is audited when it runs; ``request`` is accepted for symmetry with
    ``dataset_export`` (a worker has none)."""
    if user is None:
        raise ValidationError("A background export belongs to a staff member.")
    export_check(user=user, study=study, spec=spec)
    busy = DatasetExportJob.objects.filter(
        created_by=user, study=study, status__in=(JobStatus.QUEUED, JobStatus.RUNNING)
    )
    running = busy.order_by("-created_at").first()
    if running is not None:
        raise ExportBusy(running)
    job = DatasetExportJob.objects.create(
        study=study, created_by=user, created_at=timezone.now(), spec=spec.to_dict()
    )
    from surveys.tasks import export_job_run as task  # tasks call this module: no cycle

    transaction.on_commit(lambda pk=job.pk: task.delay(pk))
    return job


class _JobProgress:
    """Writes a running job's per cent done, only when it moves (at most 100 updates)."""

    def __init__(self, job_id: int):
        self.job_id, self.last = job_id, 0

    def __call__(self, percent: int) -> None:
        percent = max(0, min(int(percent), LAST))
        if percent > self.last:
            self.last = percent
            DatasetExportJob.objects.filter(pk=self.job_id, status=JobStatus.RUNNING).update(
                progress=percent
            )


def _write_private(path: Path, chunks: Iterable[str] | Iterable[bytes]) -> int:
    """Write the chunks to a new file only its owner reads (0600); its size in bytes."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    with os.fdopen(os.open(path, flags, 0o600), "wb") as handle:
        for chunk in chunks:
            handle.write(chunk.encode("utf-8") if isinstance(chunk, str) else chunk)
    return path.stat().st_size


def _failure_message(exc: BaseException) -> str:
    """What the user reads: never a traceback, never a value from the data."""
    if isinstance(exc, ValidationError):
        return " ".join(exc.messages)
    if isinstance(exc, SoftTimeLimitExceeded):
        return (
            "The export took longer than the worker's time limit and was stopped. Narrow it "
            "(fewer sites, waves or participants), or ask the administrator to raise "
            "CELERY_TASK_SOFT_TIME_LIMIT."
        )
    if isinstance(exc, OSError):
        return (
            "The export could not be written on the server "
            f"({exc.strerror or 'a file system error'}). Try again later, or tell the "
            "administrator if it happens again."
        )
    return (
        f"The export failed because of an error in the application ({type(exc).__name__}). "
        "It was logged without any data; try again, or tell the administrator if it "
        "happens again."
    )


def export_job_run(*, job_id: int) -> DatasetExportJob | None:
    """The task's service: run a queued job's export as its creator (``dataset_export``
    checks their rights again and writes the audit event, once), write it to a private file
    and record the progress. Any error: the job fails with a readable message and no file.
    A job that is not queued (run already, or running) is left alone: None."""
    claimed = DatasetExportJob.objects.filter(pk=job_id, status=JobStatus.QUEUED).update(
        status=JobStatus.RUNNING, progress=0, started_at=timezone.now()
    )
    if not claimed:
        return None
    job = DatasetExportJob.objects.select_related("study", "created_by").get(pk=job_id)
    try:
        spec = ExportSpec.from_dict(job.spec)
        job.scope_sites = _visible_sites(user=job.created_by, study=job.study)
        job.save(update_fields=["scope_sites"])
        export = dataset_export(
            user=job.created_by,
            study=job.study,
            spec=spec,
            progress=_JobProgress(job.pk),
            job_id=job.pk,
        )
        extension = FILE_FORMATS.get(spec.format, (None, spec.format))[1]
        # Recorded before the file exists, so that nothing on disk is ever unaccounted for.
        job.path = f"{secrets.token_urlsafe(32)}.{extension}"
        job.filename = export.filename
        job.save(update_fields=["path", "filename"])
        size = _write_private(export_root() / job.path, export.chunks)
    except Exception as exc:  # every failure ends the job, with a message the user can read
        _remove_file(job)
        if not isinstance(exc, ValidationError):
            # The frames only (file, line, code), not the message: it could quote the data.
            logger.error(
                "Dataset export job %s failed with %s at:\n%s",
                job.pk,
                type(exc).__name__,
                "".join(traceback.format_tb(exc.__traceback__)),
            )
        DatasetExportJob.objects.filter(pk=job.pk).update(
            status=JobStatus.FAILED,
            message=_failure_message(exc),
            path="",
            finished_at=timezone.now(),
        )
        job.refresh_from_db()
        return job
    finished = timezone.now()
    with transaction.atomic():  # the row locked: an erasure marks it before, or sees it done
        erased = (
            DatasetExportJob.objects.select_for_update()
            .values_list("erased_meanwhile", flat=True)
            .get(pk=job.pk)
        )
        if erased:  # someone in it had data erased while it ran: the file is not kept
            DatasetExportJob.objects.filter(pk=job.pk).update(
                status=JobStatus.EXPIRED,
                progress=100,
                rows=export.rows,
                path="",
                message=ERASED_EXPORT_MESSAGE,
                finished_at=finished,
            )
            file = _stored_file(job)
            if file is not None:
                transaction.on_commit(lambda: file.unlink(missing_ok=True))
        else:
            job.status, job.progress, job.size, job.rows = JobStatus.DONE, 100, size, export.rows
            job.finished_at = finished
            job.expires_at = finished + timedelta(hours=settings.EXPORT_DOWNLOAD_HOURS)
            job.save(
                update_fields=["status", "progress", "size", "rows", "finished_at", "expires_at"]
            )
    job.refresh_from_db()
    return job


def export_job_expired(job: DatasetExportJob, *, now=None) -> bool:
    now = now or timezone.now()
    return job.status == JobStatus.EXPIRED or (
        job.status == JobStatus.DONE and job.expires_at is not None and job.expires_at <= now
    )


def _visible_sites(*, user, study: Study) -> list[str]:
    return sorted(
        selectors.sites_for_user(user=user).filter(study=study).values_list("code", flat=True)
    )


def export_job_download(*, user, job: DatasetExportJob, request=None) -> BinaryIO:
    """The job's file, open for reading, for its creator while they may still make the same
    export (their role, and every site the file holds); the download is audited (a GET's,
    not a HEAD's). Raises ``ExportGone`` after the download window or once the creator's
    rights no longer cover the file, ``ExportNotReady`` before the file exists, ``ExportFailed``
    for a job that failed."""
    if job.created_by_id != user.pk:  # callers look jobs up with export_jobs_for_user
        raise Http404("No such export.")
    if job.status == JobStatus.FAILED:
        raise ExportFailed(job.message or "This export failed. Start it again.")
    try:
        export_check(user=user, study=job.study, spec=ExportSpec.from_dict(job.spec))
    except ValidationError:
        raise ExportGone(
            "Your role in this study no longer allows this export, so its file is not yours "
            "to download any more."
        ) from None
    if set(job.scope_sites) - set(_visible_sites(user=user, study=job.study)):
        raise ExportGone(
            "This file holds rows of sites you no longer see, so it is not yours to download "
            "any more. Start the export again."
        )
    hours = settings.EXPORT_DOWNLOAD_HOURS
    if job.status == JobStatus.EXPIRED and job.message:  # deleted before its time: says why
        raise ExportGone(job.message)
    if export_job_expired(job):
        raise ExportGone(
            f"This export has expired: its file is deleted {hours} hours after it is made, "
            "like every background export's. Start the export again to get a new file."
        )
    if job.status != JobStatus.DONE:
        raise ExportNotReady(f"This export is {job.get_status_display().lower()}, not ready.")
    path = _stored_file(job)
    try:
        if path is None:
            raise FileNotFoundError
        handle = path.open("rb")
    except FileNotFoundError:
        raise ExportGone(
            "The file of this export is no longer on the server. Start the export again to "
            "get a new file."
        ) from None
    spec = job.spec
    if request is not None and request.method == "HEAD":
        return handle  # headers only: nothing leaves, nothing to audit
    audit_log(
        action=AuditEvent.Action.EXPORT_DOWNLOAD,
        user=user,
        request=request,
        study=job.study,
        obj=job,
        details={
            "job": job.pk,
            "shape": spec.get("shape"),
            "format": spec.get("format"),
            "rows": job.rows,
            "identified": bool(spec.get("identified")),
        },
    )
    return handle


def export_job_content_type(job: DatasetExportJob) -> str:
    return FILE_FORMATS.get(job.spec.get("format"), ("application/octet-stream",))[0]


ERASED_EXPORT_MESSAGE = (
    "This export's file was deleted before its time: a participant in it asked for their data "
    "to be erased. Start the export again to get a file without it."
)


def export_files_erased_for(participant: Participant) -> int:
    """Delete the files of the study's finished background exports that may hold the
    participant's data (any made so far whose sites include theirs, now or before a move),
    when their answers or identifiers are erased at their request; their makers are told why.
    A job still running
    may have read their rows already: it is marked, and keeps no file when it ends
    (``export_job_run``). A file already downloaded is out of reach (README). Returns how many
    files were deleted.

    The jobs' rows are locked first (a job ending waits, or is waited for): a job either ends
    before this and its file is deleted here, or ends after and finds the mark."""
    sites = {participant.site.code, *participant.former_sites}  # where they are, and were
    deleted = 0
    # Queued jobs are locked too: one claimed while this erasure commits waits for it, and
    # reads what is left after it.
    jobs = (
        DatasetExportJob.objects.select_for_update()
        .filter(
            study_id=participant.study_id,
            status__in=(JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.DONE),
        )
        .order_by("pk")
    )
    for job in jobs:
        held = (job.spec or {}).get("sites") or job.scope_sites  # asked for, or all seen
        if job.status == JobStatus.QUEUED or (held and not sites & set(held)):
            continue
        if job.status == JobStatus.RUNNING:
            DatasetExportJob.objects.filter(pk=job.pk).update(erased_meanwhile=True)
            continue
        if not job.path:
            continue
        DatasetExportJob.objects.filter(pk=job.pk).update(
            status=JobStatus.EXPIRED, path="", message=ERASED_EXPORT_MESSAGE
        )
        deleted += 1
        # once the erasure is committed (a rolled-back one leaves the file as it was)
        transaction.on_commit(lambda job=job: _remove_file(job))
    return deleted


def export_jobs_expire(*, now=None) -> dict[str, int]:
    """The beat's sweep: delete the files of jobs past their download window and mark them
    expired; fail jobs a worker never finished (stopped, killed at the hard time limit) or
    never started; delete any file under EXPORT_ROOT that no job accounts for."""
    now = now or timezone.now()
    counts = {"expired": 0, "stalled": 0, "orphans": 0}
    for job in DatasetExportJob.objects.filter(status=JobStatus.DONE, expires_at__lte=now):
        _remove_file(job)
        counts["expired"] += DatasetExportJob.objects.filter(
            pk=job.pk, status=JobStatus.DONE
        ).update(status=JobStatus.EXPIRED, path="")
    window = timedelta(hours=settings.EXPORT_DOWNLOAD_HOURS)
    # A running job past the hard time limit (and a minute) was killed with its worker.
    killed = now - timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT + 60)
    stalled = DatasetExportJob.objects.filter(
        Q(status=JobStatus.RUNNING, started_at__lt=killed)
        | Q(status=JobStatus.QUEUED, created_at__lt=now - window)
    )
    for job in stalled:
        _remove_file(job)
        counts["stalled"] += DatasetExportJob.objects.filter(pk=job.pk, status=job.status).update(
            status=JobStatus.FAILED,
            path="",
            finished_at=now,
            message=(
                "The export stopped before it finished (its worker was stopped or ran out of "
                "time). Start it again."
                if job.status == JobStatus.RUNNING
                else "No worker picked the export up. Start it again, or tell the "
                "administrator that the Celery worker is not running."
            ),
        )
    root = Path(settings.EXPORT_ROOT)
    if root.is_dir():
        known = set(DatasetExportJob.objects.exclude(path="").values_list("path", flat=True))
        old = (now - window).timestamp()
        # a file write takes at most the task's time limit: older working folders are a
        # killed worker's
        stale = (now - timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT + 60)).timestamp()
        for path in root.iterdir():
            if path.is_file() and path.name not in known and path.stat().st_mtime < old:
                path.unlink(missing_ok=True)
                counts["orphans"] += 1
            elif (
                path.is_dir() and path.name.startswith(TEMP_PREFIX) and path.stat().st_mtime < stale
            ):
                shutil.rmtree(path, ignore_errors=True)
                counts["orphans"] += 1
    return counts

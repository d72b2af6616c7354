"""Dataset exports: the one dataset builder (surveys.datasets), scoped to what the user may
see, filtered, written as CSV a block at a time, and audited (who, when, filters, shape,
format, rows, identified or not). The admin page and ``manage.py export_dataset`` both call
``dataset_export``.

Formats: CSV (streamed as it is written), Excel, SPSS, Stata and Parquet (written to a private
temporary file, then streamed). De-identified by default (pseudonymous IDs, no identifier items,
no free text, days instead of dates); an identified export (study IDs, identifier items, free
text; never contact details) is for principal investigators, with a typed reason, and is audited
as such. Background exports are the next piece of issue 7.
"""

import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path

from django.core.exceptions import ValidationError
from django.utils import timezone

from surveys import selectors
from surveys.audit import audit_log
from surveys.datasets import (
    codebook,
    csv_rows,
    dataset_diary,
    dataset_long,
    dataset_wide,
    pseudonymous_id,
)
from surveys.datasets.formats import FORMATS as FILE_FORMATS
from surveys.datasets.formats import write_dataset
from surveys.models import AuditEvent, Participant, Study

SHAPES = ("long", "wide", "diary", "codebook")
FORMATS = tuple(FILE_FORMATS)


@dataclass(frozen=True)
class ExportSpec:
    shape: str = "long"
    format: str = "csv"
    labels: bool = False  # value labels instead of codes
    sites: tuple[str, ...] = ()  # site codes; empty: every site the user may see
    waves: tuple[str, ...] = ()  # wave slugs; empty: all
    statuses: tuple[str, ...] = ()  # participant statuses; empty: all
    enrolled_from: date | None = None
    enrolled_to: date | None = None
    covariates: tuple[str, ...] = field(default_factory=tuple)
    # Principal investigators only, with a typed reason: the study ID beside pid, answers to
    # items marked as identifiers and free text. Never contact details.
    identified: bool = False
    reason: str = ""

    def validate(self, *, study: Study) -> None:
        errors = {}
        if self.shape not in SHAPES:
            errors["shape"] = f"Choose one of: {', '.join(SHAPES)}."
        if self.format not in FORMATS:
            errors["format"] = f"Choose one of: {', '.join(FORMATS)}."
        unknown = set(self.sites) - set(study.sites.values_list("code", flat=True))
        if unknown:
            errors["sites"] = f"Not sites of this study: {', '.join(sorted(unknown))}."
        unknown = set(self.waves) - set(study.waves.values_list("slug", flat=True))
        if unknown:
            errors["waves"] = f"Not waves of this study: {', '.join(sorted(unknown))}."
        unknown = set(self.statuses) - set(Participant.Status.values)
        if unknown:
            errors["statuses"] = f"Unknown statuses: {', '.join(sorted(unknown))}."
        if self.enrolled_from and self.enrolled_to and self.enrolled_from > self.enrolled_to:
            errors["enrolled_to"] = "The end of the enrolment range is before its start."
        if errors:
            raise ValidationError(errors)


@dataclass
class Export:
    filename: str
    rows: int
    chunks: Iterator[str] | Iterator[bytes]
    content_type: str = "text/csv; charset=utf-8"


FILE_CHUNK = 64 * 1024


def _file_chunks(frame, fmt: str, study: Study) -> Iterator[bytes]:
    """Write the file to a private temporary file, then give it out in blocks and remove it
    (the statistics packages' formats need a file, not a stream)."""
    with tempfile.TemporaryDirectory(prefix="export-") as folder:
        path = Path(folder) / f"dataset.{fmt}"
        write_dataset(frame, path, fmt, study=study)
        with path.open("rb") as handle:
            while block := handle.read(FILE_CHUNK):
                yield block


def export_participants(*, user, study: Study, spec: ExportSpec):
    """The participants of ``study`` the user may see, narrowed by the spec's filters."""
    if user is None:  # manage.py: the whole study
        people = Participant.objects.filter(study=study)
    else:
        people = selectors.participants_for_user(user=user).filter(study=study)
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


def _study_ids_add(frame, *, study: Study, people) -> None:
    """The study ID beside each pid (identified exports only)."""
    codes = {
        pseudonymous_id(study_id=study.pk, participant_id=pk): code
        for pk, code in people.values_list("pk", "code")
    }
    frame.insert(1, "study_id", frame["pid"].map(codes).astype("string"))
    frame.attrs.setdefault("columns", {})["study_id"] = {
        "name": "study_id",
        "label": "Study ID (identified export)",
        "dtype": "string",
        "role": "id",
    }


def dataset_export(*, user, study: Study, spec: ExportSpec, request=None) -> Export:
    """Build the dataset the spec asks for and audit it; the CSV text comes from
    ``Export.chunks``. ``user=None`` is ``manage.py`` (the whole study, audited as such)."""
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
    people = export_participants(user=user, study=study, spec=spec)
    waves = list(spec.waves) or None
    if spec.shape == "diary":
        frame = dataset_diary(study=study, participants=people)
    else:
        frame = dataset_long(
            study=study,
            participants=people,
            waves=waves,
            covariates=spec.covariates,
            include_identifiers=spec.identified,
            include_free_text=spec.identified,
        )
        if spec.shape == "wide":
            frame = dataset_wide(frame)
        elif spec.shape == "codebook":
            frame = codebook(study, frame)
    if spec.identified and "pid" in frame.columns:
        _study_ids_add(frame, study=study, people=people)
    details = {
        **{k: (v.isoformat() if isinstance(v, date) else v) for k, v in asdict(spec).items()},
        "rows": len(frame),
        "columns": len(frame.columns),
        "identified": spec.identified,
        "by": "manage.py" if user is None else "",
    }
    audit_log(
        action=AuditEvent.Action.DATASET_EXPORT,
        user=user,
        request=request,
        study=study,
        details=details,
    )
    stamp = timezone.localdate().isoformat()
    content_type, extension = FILE_FORMATS[spec.format]
    chunks = (
        csv_rows(frame, labels=spec.labels)
        if spec.format == "csv"
        else _file_chunks(frame, spec.format, study)
    )
    marked = "_IDENTIFIED" if spec.identified else ""
    return Export(
        filename=f"{study.slug}_{spec.shape}{marked}_{stamp}.{extension}",
        rows=len(frame),
        chunks=chunks,
        content_type=content_type,
    )

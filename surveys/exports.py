"""Dataset exports: the one dataset builder (surveys.datasets), scoped to what the user may
see, filtered, written as CSV a block at a time, and audited (who, when, filters, shape,
format, rows, identified or not). The admin page and ``manage.py export_dataset`` both call
``dataset_export``.

Only de-identified exports exist so far (pseudonymous IDs, no identifier items, no free text,
days instead of dates); the identified export for principal investigators, the other formats
and background exports are the next pieces of issue 7.
"""

from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import date

from django.core.exceptions import ValidationError
from django.utils import timezone

from surveys import selectors
from surveys.audit import audit_log
from surveys.datasets import codebook, csv_rows, dataset_diary, dataset_long, dataset_wide
from surveys.models import AuditEvent, Participant, Study

SHAPES = ("long", "wide", "diary", "codebook")
FORMATS = ("csv",)


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

    def validate(self, *, study: Study) -> None:
        errors = {}
        if self.shape not in SHAPES:
            errors["shape"] = f"Choose one of: {', '.join(SHAPES)}."
        if self.format not in FORMATS:
            errors["format"] = (
                f"Only {', '.join(FORMATS)} so far (XLSX, SPSS, Stata and Parquet are coming)."
            )
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
    chunks: Iterator[str]
    content_type: str = "text/csv; charset=utf-8"


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


def dataset_export(*, user, study: Study, spec: ExportSpec, request=None) -> Export:
    """Build the dataset the spec asks for and audit it; the CSV text comes from
    ``Export.chunks``. ``user=None`` is ``manage.py`` (the whole study, audited as such)."""
    if user is not None and not selectors.studies_for_user(user=user).filter(pk=study.pk).exists():
        raise ValidationError("You have no role in this study.")
    spec.validate(study=study)
    people = export_participants(user=user, study=study, spec=spec)
    waves = list(spec.waves) or None
    if spec.shape == "diary":
        frame = dataset_diary(study=study, participants=people)
    else:
        frame = dataset_long(
            study=study, participants=people, waves=waves, covariates=spec.covariates
        )
        if spec.shape == "wide":
            frame = dataset_wide(frame)
        elif spec.shape == "codebook":
            frame = codebook(study, frame)
    details = {
        **{k: (v.isoformat() if isinstance(v, date) else v) for k, v in asdict(spec).items()},
        "rows": len(frame),
        "columns": len(frame.columns),
        "identified": False,
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
    return Export(
        filename=f"{study.slug}_{spec.shape}_{stamp}.{spec.format}",
        rows=len(frame),
        chunks=csv_rows(frame, labels=spec.labels),
    )

"""CSV bulk import of participants: read the file, check every row, enrol all of them or none.

Each row is enrolled by ``services.participant_enrol``, the code path of manual enrolment (study
ID, consent, contact details, assignments, invitations). Before that, every row is checked with
the same validators that service runs (the models' ``full_clean``, ``consent_validate`` and
``enrolment_date_validate``), called one by one, because the service stops at its first failing
stage and a file's author needs every problem of every line at once. The preview is the real
enrolment of the whole file inside a transaction that is rolled back.

Line numbers count rows as a spreadsheet shows them: the header is line 1, and a cell holding a
line break is still one line.
"""

import base64
import csv
import hashlib
import io
import json
import re
import time
import zlib
import zoneinfo
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import date, datetime

from cryptography.fernet import Fernet, InvalidToken
from django.contrib.auth import get_user_model
from django.core.exceptions import NON_FIELD_ERRORS, PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.crypto import salted_hmac

from surveys.audit import audit_log
from surveys.consent import ConsentInput, consent_validate, consent_version_current
from surveys.fields import contact_lookup, email_normalise, phone_normalise
from surveys.models import (
    Assignment,
    AuditEvent,
    Consent,
    ConsentVersion,
    Language,
    Message,
    Participant,
    ParticipantContact,
    Site,
    StaffRole,
    Study,
)
from surveys.reminders import reminders_plan
from surveys.services import (
    CONTACT_FIELDS,
    enrolment_date_validate,
    enrolment_today,
    participant_enrol,
    participant_today,
)

MAX_FILE_BYTES = 2 * 1024 * 1024
# Enrolment takes about 10 ms a person (measured: 1,000 in 11 s on a busy 2-core machine):
# the largest file imports well inside the web server's 90 s timeout (Dockerfile).
MAX_ROWS = 2000
ALREADY_IMPORTED = (
    "This very file was imported into the study already (each file is imported once): "
    "nothing was saved again."
)
# How long a preview can be confirmed.
PAYLOAD_MAX_AGE_SECONDS = 3600
# Invitations are planned for this many assignments at a time (a few queries per batch).
PLAN_BATCH = 2000

ROLE = StaffRole.Role


@dataclass(frozen=True)
class Column:
    name: str
    required: bool
    help: str


COLUMNS = (
    Column("site", True, "The site's code, e.g. NYC."),
    Column("study_id", False, "Empty: the site's next study ID (NYC-0043). A value keeps it."),
    Column("enrolled_on", False, "YYYY-MM-DD. Empty: today."),
    Column("timezone", False, "An IANA time zone, e.g. America/New_York. Empty: the site's."),
    Column("language", False, "en, es or fa. Empty: the study's language."),
    Column(
        "preferred_channel",
        False,
        "email or sms. Empty: email when the row has an e-mail address, else sms.",
    ),
    Column("first_name", False, "Optional; at most 200 characters."),
    Column("last_name", False, "Optional; at most 200 characters."),
    Column("email", False, "Every row needs an e-mail address or a phone number, or both."),
    Column("phone", False, "At least 9 digits, at most 25 characters, e.g. +1 555 010 4477."),
    Column(
        "alternative_contacts",
        False,
        "Other ways to reach them: family, friends, case worker. At most 2,000 characters.",
    ),
    Column(
        "locator_notes",
        False,
        "Anything that helps find the participant again. At most 2,000 characters.",
    ),
    Column(
        "consent_method",
        True,
        "written, verbal or electronic (the participant consents on their phone).",
    ),
    Column("consent_version", False, "The version, e.g. 1.0. Empty: the study's current one."),
    Column(
        "consent_date",
        False,
        "YYYY-MM-DD. Required for written and verbal consent; empty for electronic.",
    ),
    Column(
        "consent_obtained_by",
        False,
        "The username of the staff member who obtained consent. Empty: you. Empty for electronic.",
    ),
)
COLUMN_NAMES = tuple(column.name for column in COLUMNS)
REQUIRED_COLUMNS = tuple(column.name for column in COLUMNS if column.required)

# The template's example row (obviously fictional: example.org, a 555-01xx number). A file
# that still holds it is refused, so nobody enrols "Example Participant" by mistake.
EXAMPLE_EMAIL = "example.participant@example.org"
EXAMPLE_PHONE = "+1 555 010 0199"

# Where a service's error keys belong in the file.
_ERROR_COLUMNS = {"code": "study_id", "study": "", NON_FIELD_ERRORS: "", "contact": ""}
_CHOICES = {
    "language": Language.values,
    "preferred_channel": Participant.Channel.values,
    "consent_method": Consent.Method.values,
}
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
# A phone number Excel turned into a number: 1.21255E+10.
_EXCEL_NUMBER = re.compile(r"\d(?:[.,]\d+)?E\+?\d+", re.IGNORECASE)


@dataclass(frozen=True)
class ImportProblem:
    """One problem: ``line`` 0 is the file as a whole, ``column`` '' the whole line."""

    line: int
    column: str
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}" if self.line else "file"
        return (
            f"{where}, {self.column}: {self.message}" if self.column else f"{where}: {self.message}"
        )


@dataclass(frozen=True)
class ImportedRow:
    """A row as enrolled (or as it would be): research fields in clear, contact details masked."""

    line: int
    participant_id: int | None
    code: str
    code_generated: bool
    site_code: str
    enrolled_on: date
    timezone: str
    language: str
    channel: str
    consent_method: str
    consent_version: str
    consent_date: date | None
    name: str
    email: str
    phone: str
    has_alternative_contacts: bool
    has_locator_notes: bool


@dataclass
class ImportResult:
    committed: bool = False
    errors: list[ImportProblem] = field(default_factory=list)
    rows: list[ImportedRow] = field(default_factory=list)
    encoding: str = ""
    delimiter: str = ""
    columns: list[str] = field(default_factory=list)
    assignments: int = 0
    invitations: int = 0
    planned: list = field(default_factory=list, repr=False)  # the checked rows, to enrol
    foreign_matches: list = field(default_factory=list, repr=False)

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def western_encoding_only(self) -> bool:
        """Read in an encoding of Western European letters only (UTF-8 and UTF-16 hold all)."""
        return self.encoding in LEGACY_ENCODINGS

    @property
    def error_lines(self) -> int:
        return len({problem.line for problem in self.errors})

    @property
    def sites(self) -> dict[str, int]:
        return dict(sorted(Counter(row.site_code for row in self.rows).items()))

    @property
    def consent_methods(self) -> dict[str, int]:
        return dict(Counter(row.consent_method for row in self.rows))


class ImportFileError(Exception):
    """The file cannot be read as a participant CSV; ``errors`` says why."""

    def __init__(self, errors: list[ImportProblem], encoding: str = ""):
        super().__init__(errors)
        self.errors = errors
        self.encoding = encoding


# --- Who may import where ------------------------------------------------------------------


def studies_user_may_enrol(*, user) -> QuerySet[Study]:
    """Studies where the user enrols: as principal investigator or coordinator (researchers
    never do, they never see identifiers)."""
    if user.is_superuser:
        return Study.objects.all()
    return Study.objects.filter(
        staff_roles__user=user,
        staff_roles__role__in=(ROLE.PRINCIPAL_INVESTIGATOR, ROLE.COORDINATOR),
    ).distinct()


def sites_user_may_enrol(*, user, study: Study) -> list[Site]:
    """Every site of the study for its PIs, their own sites for coordinators, else none."""
    sites = study.sites.order_by("code")
    if user.is_superuser:
        return list(sites)
    role = StaffRole.objects.filter(user=user, study=study).first()
    if role is None or role.role == ROLE.RESEARCHER:
        return []
    if role.role == ROLE.PRINCIPAL_INVESTIGATOR:
        return list(sites)
    return list(sites.filter(pk__in=role.sites.values("pk")))


# --- Reading the file ----------------------------------------------------------------------


@dataclass
class CsvFile:
    encoding: str
    delimiter: str
    columns: list[str]
    rows: list[tuple[int, dict[str, str]]]  # (line, value by column)
    problems: list[ImportProblem]  # lines that could not be read


_BINARY_SIGNATURES = (
    (b"PK\x03\x04", "an Excel workbook (.xlsx) or another zipped file"),
    (b"\xd0\xcf\x11\xe0", "an old Excel workbook (.xls)"),
    (b"%PDF", "a PDF document"),
)
_SAVE_AS_CSV = "In Excel choose File › Save As › “CSV UTF-8 (Comma delimited)” and upload that."


def _decode(data: bytes) -> tuple[str, str]:
    """(text, the encoding read, as people know it). Excel writes UTF-8 with a BOM (“CSV
    UTF-8”), Windows-1252 (plain “CSV” on Western Windows) or UTF-16 (“Unicode Text”).

    A lone UTF-16 surrogate is let through (as a lone surrogate in the text) so that the
    line and column holding it can be named; any other damage to a UTF-16 file refuses it."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16", "surrogatepass"), "UTF-16"
        except UnicodeDecodeError as exc:
            raise _refuse(
                "The file is not readable text: it is marked as UTF-16 (Excel’s “Unicode "
                f"Text”) but byte {exc.start + 1:,} of {len(data):,} is not UTF-16 "
                f"({exc.reason}; was the file cut short?). {_SAVE_AS_CSV}",
                "UTF-16",
            ) from exc
    try:
        text = data.decode("utf-8-sig")
        return text, "UTF-8 with BOM" if data.startswith(b"\xef\xbb\xbf") else "UTF-8"
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252"), LEGACY_ENCODINGS[0]
    except UnicodeDecodeError:
        return data.decode("latin-1"), LEGACY_ENCODINGS[1]


# Encodings that hold Western European letters only: names in other alphabets read wrongly.
LEGACY_ENCODINGS = ("Windows-1252, Excel’s Western European encoding", "Latin-1 (ISO-8859-1)")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _unreadable(cell: str) -> str:
    """Why a value is not text ('' when it is): a NUL byte or a broken UTF-16 character."""
    if "\x00" in cell:
        return (
            "This value holds a NUL character (an invisible byte 0), so it is not text: the "
            "file is damaged or was exported wrongly. Type the value again in the spreadsheet "
            "and save the file again."
        )
    if _LONE_SURROGATE.search(cell):
        return (
            "This value holds a broken character (half of a UTF-16 character pair), so it is "
            "not readable text. Type the value again in the spreadsheet and save the file as "
            "“CSV UTF-8”."
        )
    return ""


def _sniff_delimiter(text: str) -> str:
    """The separator of the header line: the one of , ; and tab it holds most often (quoted
    text aside); a comma when it holds none."""
    header = next((line for line in text.splitlines() if line.strip()), "")
    unquoted = re.sub(r'"[^"]*"', "", header)
    counts = {delimiter: unquoted.count(delimiter) for delimiter in (",", ";", "\t")}
    best = max(counts, key=counts.get)
    return best if counts[best] else ","


def _column_name(cell: str) -> str:
    return re.sub(r"[\s\-]+", "_", cell.strip().strip("\ufeff").strip().lower())


def _refuse(message: str, encoding: str = "", line: int = 0) -> ImportFileError:
    return ImportFileError([ImportProblem(line, "", message)], encoding)


def csv_read(data: bytes) -> CsvFile:
    """The file's rows as values by column, and the problems of lines that cannot be read;
    ImportFileError when the file as a whole cannot be used."""
    if len(data) > MAX_FILE_BYTES:
        raise _refuse(
            f"The file is {len(data) / 1024 / 1024:.1f} MB; the limit is "
            f"{MAX_FILE_BYTES // 1024 // 1024} MB. Split it into smaller files."
        )
    for signature, kind in _BINARY_SIGNATURES:
        if data.startswith(signature):
            raise _refuse(f"This is {kind}, not a CSV file. {_SAVE_AS_CSV}")
    # Many NUL bytes: a binary file (or UTF-16 without its BOM). One or two: a damaged text
    # file, whose lines holding them are named below.
    head = data[:8192]
    if not data.startswith((b"\xff\xfe", b"\xfe\xff")) and head.count(0) > max(2, len(head) // 100):
        raise _refuse(f"This is not a text file, so not a CSV file. {_SAVE_AS_CSV}")
    text, encoding = _decode(data)
    delimiter = _sniff_delimiter(text)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    records: list[tuple[int, list[str]]] = []
    try:
        for record in reader:
            records.append((len(records) + 1, record))
    except csv.Error as exc:
        if "end of data" in str(exc):
            message = 'A quoted value is not closed: a " is missing.'
        else:
            message = f"This line cannot be read as CSV ({exc})."
        raise _refuse(message, encoding, line=len(records) + 1) from exc
    records = [(n, r) for n, r in records if any(cell.strip() for cell in r)]
    if not records:
        raise _refuse("The file is empty.", encoding)
    header_line, header = records[0]
    unreadable = [
        ImportProblem(header_line, "", f"The header's cell {i}: {why}")
        for i, why in enumerate(map(_unreadable, header), start=1)
        if why
    ]
    if unreadable:
        raise ImportFileError(unreadable, encoding)
    names = [_column_name(cell) for cell in header]
    if not any(name in COLUMN_NAMES for name in names):
        raise _refuse(
            f"Line {header_line} is not a header row: none of its cells names a column. The "
            f"first line names the columns, e.g. {', '.join(COLUMN_NAMES[:3])}… (download the "
            "template).",
            encoding,
            line=header_line,
        )
    errors: list[ImportProblem] = []
    unknown = [cell.strip() for cell, n in zip(header, names, strict=True) if n not in COLUMN_NAMES]
    if any(unknown):
        errors.append(
            ImportProblem(
                header_line,
                "",
                f"Unknown column(s): {', '.join(u for u in unknown if u)}. The columns are "
                f"{', '.join(COLUMN_NAMES)}.",
            )
        )
    for name, count in Counter(n for n in names if n).items():
        if count > 1:
            errors.append(ImportProblem(header_line, name, "This column appears more than once."))
    missing = [name for name in REQUIRED_COLUMNS if name not in names]
    if missing:
        errors.append(
            ImportProblem(header_line, "", f"Required column(s) missing: {', '.join(missing)}.")
        )
    if "email" not in names and "phone" not in names:
        errors.append(ImportProblem(header_line, "", "The file needs an email or a phone column."))
    data_records = records[1:]
    if len(data_records) > MAX_ROWS:
        errors.append(
            ImportProblem(
                0,
                "",
                f"The file has {len(data_records):,} participants; the limit is {MAX_ROWS:,} "
                "per import. Split it into smaller files.",
            )
        )
    if errors:
        raise ImportFileError(errors, encoding)
    result = CsvFile(encoding, delimiter, [n for n in names if n], [], [])
    separator = {",": "comma", ";": "semicolon", "\t": "tab"}[delimiter]
    for number, record in data_records:
        unreadable = [
            ImportProblem(number, names[i] if i < len(names) else "", why)
            for i, why in enumerate(map(_unreadable, record))
            if why
        ]
        if unreadable:
            result.problems.extend(unreadable)
            continue
        cells = [cell.strip() for cell in record]
        # A spreadsheet may add empty cells after the last column (or under a nameless one).
        if len(cells) < len(names) or any(cells[len(names) :]):
            result.problems.append(
                ImportProblem(
                    number,
                    "",
                    f"{len(cells)} values where the header names {len(names)} columns (a stray "
                    f"{separator} or a missing quote?).",
                )
            )
        elif any(cell for name, cell in zip(names, cells) if not name):  # noqa: B905
            result.problems.append(ImportProblem(number, "", "A value has no column name."))
        else:
            result.rows.append((number, {n: c for n, c in zip(names, cells) if n}))  # noqa: B905
    return result


# --- Checking rows -------------------------------------------------------------------------


@dataclass
class _Context:
    study: Study
    user: object
    now: datetime
    today: date
    sites: dict[str, Site]  # every site of the study, by upper-case code
    mine: dict[str, Site]  # the sites the user enrols at
    versions: dict[str, ConsentVersion]
    current_version: ConsentVersion | None
    staff: dict[str, object]  # usernames named in the file with a role in the study
    taken_codes: set[str]
    enrolled_emails: dict[str, Participant]  # contact digest → a participant of the study
    enrolled_phones: dict[str, Participant]
    zones: dict[str, str]  # lower-case IANA name → its spelling
    zone_checks: dict[str, list[str]] = field(default_factory=dict)  # problems by zone
    # Participants of other sites whose e-mail or phone a line of the file has.
    foreign_matches: list[Participant] = field(default_factory=list)


@dataclass
class _Planned:
    line: int
    participant: Participant
    contact: dict[str, str]
    consent: ConsentInput


def _context(*, study: Study, user, sites: list[Site], csv_file: CsvFile) -> _Context:
    values = [v for _, v in csv_file.rows]
    codes = {v.get("study_id", "") for v in values} - {""}
    usernames = {v.get("consent_obtained_by", "") for v in values} - {""}
    emails = {contact_lookup("email", v.get("email", "")) for v in values} - {""}
    phones = {contact_lookup("phone", v.get("phone", "")) for v in values} - {""}
    contacts = ParticipantContact.objects.filter(participant__study=study).select_related(
        "participant__site"
    )
    staff = get_user_model().objects.filter(username__in=usernames, study_roles__study=study)
    now = timezone.now()
    return _Context(
        study=study,
        user=user,
        now=now,
        today=timezone.localdate(now),
        sites={site.code.upper(): site for site in study.sites.all()},
        mine={site.code.upper(): site for site in sites},
        versions={v.version: v for v in study.consent_versions.all()},
        current_version=consent_version_current(study=study),
        staff={u.get_username(): u for u in staff},
        taken_codes=set(
            Participant.objects.filter(study=study, code__in=codes).values_list("code", flat=True)
        ),
        enrolled_emails={
            c.email_lookup: c.participant
            for c in contacts.filter(email_lookup__in=emails).only(
                "email_lookup", "participant__code", "participant__site__code"
            )
        },
        enrolled_phones={
            c.phone_lookup: c.participant
            for c in contacts.filter(phone_lookup__in=phones).only(
                "phone_lookup", "participant__code", "participant__site__code"
            )
        },
        zones={name.lower(): name for name in zoneinfo.available_timezones()},
    )


ALREADY_ENROLLED = {"email": "e-mail address", "phone": "phone number"}


def already_enrolled_problem(what: str, other: Participant, *, known: bool) -> str:
    """The problem of a contact another participant of the study has: their study ID where
    the user may enrol at their site, else only that they are at another site."""
    where = f" ({other.code})." if known else " (at another site)."
    return f"A participant of this study already has this {what}{where}"


def contact_already_enrolled(
    *, study: Study, contact: dict, user, request=None, by: str = "api"
) -> dict[str, str]:
    """Field -> problem, for an e-mail address or phone number another participant of the
    study already has: the API's enrolment (``by``) and the admin's Add form refuse it as an
    import's line does (a client sending the same enrolment again after a lost reply, or a
    coordinator enrolling someone already enrolled, would otherwise enrol the person twice;
    call it with the study's row locked, as both do, so that two such requests at once
    enrol one). The other participant's study ID is named only where
    the user may enrol at their site; a match at another site is on that participant's
    record, as an import's is."""
    problems = {}
    mine = {site.pk for site in sites_user_may_enrol(user=user, study=study)}
    for column, what in ALREADY_ENROLLED.items():
        lookup = contact_lookup(column, contact.get(column) or "")
        if not lookup:
            continue
        found = (
            ParticipantContact.objects.filter(
                participant__study=study, **{f"{column}_lookup": lookup}
            )
            .select_related("participant")
            .first()
        )
        if found is None:
            continue
        other = found.participant
        known = other.site_id in mine
        problems[column] = already_enrolled_problem(what, other, known=known)
        if not known:
            audit_log(
                action=AuditEvent.Action.PARTICIPANT_IMPORT,
                user=user,
                request=request,
                participant=other,
                details={"refused_enrolment": "already enrolled at another site", "by": by},
            )
    return problems


def _date(value: str) -> date:
    if not _ISO_DATE.fullmatch(value):
        raise ValueError
    return date.fromisoformat(value)


def _problems(line: int, exc: ValidationError, *, skip=()) -> list[ImportProblem]:
    """A service's or model's ValidationError as problems of one line, by column."""
    problems = []
    for key, messages in exc.message_dict.items():
        column = _ERROR_COLUMNS.get(key, key)
        if column in skip:
            continue
        for message in messages:
            if column in _CHOICES:
                message = f"{message} Use one of: {', '.join(_CHOICES[column])}."
            problems.append(ImportProblem(line, column, message))
    return problems


def _your_sites(ctx: _Context) -> str:
    return ", ".join(sorted(ctx.mine)) or "none"


def _row_check(
    line: int, values: dict[str, str], ctx: _Context, seen: dict[tuple[str, str], int]
) -> tuple[_Planned | None, list[ImportProblem]]:
    """The row as a participant, contact details and consent to enrol, and every problem."""
    errors: list[ImportProblem] = []

    def error(column: str, message: str) -> None:
        errors.append(ImportProblem(line, column, message))

    get = values.get
    # The site
    site_code = get("site", "")
    site = ctx.mine.get(site_code.upper())
    if not site_code:
        error("site", f"Give the site's code ({_your_sites(ctx)}).")
    elif site_code.upper() in ctx.sites and site is None:
        error("site", f"{site_code} is not one of your sites ({_your_sites(ctx)}).")
    elif site is None:
        error(
            "site",
            f"No site of this study has the code {site_code} (your sites: {_your_sites(ctx)}).",
        )
    # The study ID: empty, the site's next one
    code = get("study_id", "")
    if code in ctx.taken_codes:
        error("study_id", f"{code} is already taken in this study.")
    elif code and ("study_id", code) in seen:
        error("study_id", f"{code} is also on line {seen['study_id', code]}.")
    elif code and site is not None and (owner := _prefix_site(code, ctx)) not in (None, site):
        error(
            "study_id",
            f"{code} starts with the code of site {owner.code}, but the row is of site "
            f"{site.code}: its study IDs start {site.code}- (empty: the site's next).",
        )
    elif code:
        seen["study_id", code] = line
    # Dates
    parsed: dict[str, date | None] = {}
    for column in ("enrolled_on", "consent_date"):
        raw = get(column, "")
        try:
            parsed[column] = _date(raw) if raw else None
        except ValueError:
            error(column, f"{raw} is not a valid date; write it YYYY-MM-DD (e.g. 2026-01-31).")
    # Time zone, language, channel: the site's, the study's, and what the contacts allow
    zone = get("timezone", "")
    zone = ctx.zones.get(zone.lower(), zone) if zone else (site.timezone if site else "UTC")
    language = get("language", "").lower() or ctx.study.default_language
    email, phone = get("email", ""), get("phone", "")
    channel = get("preferred_channel", "").lower()
    if not channel:
        channel = Participant.Channel.EMAIL if email else Participant.Channel.SMS
    elif channel == Participant.Channel.EMAIL and phone and not email:
        error("preferred_channel", "email is preferred, but the row has no e-mail address.")
    elif channel == Participant.Channel.SMS and email and not phone:
        error("preferred_channel", "sms is preferred, but the row has no phone number.")
    # Contact details: at least one way to reach the participant, each person once
    contact = {name: get(name, "") for name in CONTACT_FIELDS}
    if not email and not phone:
        error("email/phone", "Give an e-mail address or a phone number (or both).")
    if email == EXAMPLE_EMAIL or phone == EXAMPLE_PHONE:
        error("", "This is the template's example row: delete it before importing.")
    if _EXCEL_NUMBER.fullmatch(phone):
        error(
            "phone",
            "Excel turned this phone number into a number (like 1.2E+10): format the column "
            "as Text, type the numbers again and save.",
        )
    for column, normalised, enrolled, what in (
        ("email", email_normalise(email), ctx.enrolled_emails, "e-mail address"),
        ("phone", phone_normalise(phone), ctx.enrolled_phones, "phone number"),
    ):
        if not normalised:
            continue
        if (column, normalised) in seen:
            error(column, f"The same {what} as line {seen[column, normalised]}.")
            continue
        seen[column, normalised] = line
        other = enrolled.get(contact_lookup(column, values[column]))
        if other is not None:
            known = other.site.code.upper() in ctx.mine
            if not known:
                ctx.foreign_matches.append(other)
            error(column, already_enrolled_problem(what, other, known=known))
    # Consent
    method = get("consent_method", "").lower()
    label = get("consent_version", "")
    version = ctx.versions.get(label) if label else ctx.current_version
    if label and version is None:
        known = ", ".join(ctx.versions) or "none yet"
        error("consent_version", f"{label} is not a consent version of this study ({known}).")
    obtained_by = ctx.user
    if method == Consent.Method.ELECTRONIC:
        obtained_by = None
        for column in ("consent_date", "consent_obtained_by"):
            if get(column):
                error(column, "Leave empty for electronic consent: the phone records it.")
    elif get("consent_obtained_by"):
        obtained_by = ctx.staff.get(get("consent_obtained_by"))
        if obtained_by is None:
            error(
                "consent_obtained_by",
                f"Nobody called {get('consent_obtained_by')} has a role in this study.",
            )
    # The validators participant_enrol runs, each on its own, so that every problem shows.
    failed = {problem.column for problem in errors}
    participant = Participant(
        study=ctx.study,
        site=site,
        code=code if "study_id" not in failed else "",
        enrolled_on=parsed.get("enrolled_on") or participant_today(timezone_name=zone),
        timezone=zone,
        language=language,
        preferred_channel=channel,
    )
    # The time zone is checked once per value (the check reads the whole tz database).
    exclude = ["timezone"] if participant.code else ["timezone", "code"]
    if site is None:
        exclude.append("site")
    consent = ConsentInput(
        method=method,
        version=version,
        consented_on=parsed.get("consent_date"),
        obtained_by=obtained_by,
    )
    # A date compared with the approval of a version the file does not name means nothing.
    skip = failed | ({"consent_date"} if "consent_version" in failed else set())
    checks = [
        lambda: participant.full_clean(exclude=exclude),
        lambda: _timezone_check(zone, ctx),
        lambda: ParticipantContact(**contact).full_clean(exclude=["participant"]),
        lambda: consent_validate(
            study=ctx.study,
            consent=consent,
            today=enrolment_today(timezone_name=zone, now=ctx.now),
        ),
    ]
    if parsed.get("enrolled_on"):  # empty: today, which participant_enrol checks itself
        checks.append(
            lambda: enrolment_date_validate(
                enrolled_on=participant.enrolled_on,
                timezone_name=zone,
                consent=consent,
                now=ctx.now,
            )
        )
    for check in checks:
        try:
            check()
        except ValidationError as exc:
            errors.extend(_problems(line, exc, skip=skip))
    if errors:
        return None, errors
    return _Planned(line, participant, contact, consent), []


def _prefix_site(code: str, ctx: _Context) -> Site | None:
    """The site of the study whose prefix (its code and a dash) the study ID starts with; the
    longest such code when several do (A-B-0001 is of site A-B, not A)."""
    matches = [c for c in ctx.sites if code.upper().startswith(f"{c}-")]
    return ctx.sites[max(matches, key=len)] if matches else None


def _timezone_check(zone: str, ctx: _Context) -> None:
    """The model's validation of Participant.timezone, once per distinct value in the file."""
    if zone not in ctx.zone_checks:
        try:
            Participant._meta.get_field("timezone").clean(zone, None)
            ctx.zone_checks[zone] = []
        except ValidationError as exc:
            ctx.zone_checks[zone] = exc.messages
    if ctx.zone_checks[zone]:
        raise ValidationError({"timezone": ctx.zone_checks[zone]})


# --- Masking (the preview is a summary) ----------------------------------------------------

MASK = "•••"


def mask_email(value: str) -> str:
    local, at, domain = value.partition("@")
    return f"{local[:1]}{MASK}@{domain}" if at else (f"{value[:1]}{MASK}" if value else "")


def mask_phone(value: str) -> str:
    """Every digit but the last two hidden, the layout kept: a lost leading zero shows."""
    digits = sum(ch.isdigit() for ch in value)
    out, seen = [], 0
    for ch in value:
        if ch.isdigit():
            seen += 1
            out.append(ch if seen > digits - 2 else "•")
        else:
            out.append(ch)
    return "".join(out)


def mask_name(first: str, last: str) -> str:
    return " ".join(f"{part[:1]}{MASK}" for part in (first, last) if part)


# --- The service ---------------------------------------------------------------------------


def participants_import(
    *, study: Study, user, file_bytes: bytes, commit: bool, request=None
) -> ImportResult:
    """Enrol every participant of a CSV file into ``study``, all or nothing.

    ``commit=False`` is the preview: the same checks and the same enrolment, rolled back. With
    ``commit=True`` and no problem, the participants are saved and one audit event (counts and
    site codes, never an identifier) records the import. Raises PermissionDenied when the user
    enrols at no site of the study; rows of other sites are problems of their lines.
    """
    sites = sites_user_may_enrol(user=user, study=study)
    if not sites:
        raise PermissionDenied("You do not enrol participants in this study.")
    result = ImportResult()
    try:
        csv_file = csv_read(file_bytes)
    except ImportFileError as exc:
        result.errors, result.encoding = exc.errors, exc.encoding
        return result
    result.encoding, result.delimiter, result.columns = (
        csv_file.encoding,
        csv_file.delimiter,
        csv_file.columns,
    )
    if not csv_file.rows and not csv_file.problems:
        result.errors = [ImportProblem(0, "", "The file has a header but no participants.")]
        return result
    digest = hashlib.sha256(file_bytes).hexdigest()
    with transaction.atomic():
        if commit:
            # One confirmation of a study at a time, checked inside the lock: a second
            # confirmation of the same preview (a double click, a resent form) waits here, then
            # finds this very file imported and saves nothing.
            Study.objects.select_for_update().filter(pk=study.pk).exists()
            if AuditEvent.objects.filter(
                action=AuditEvent.Action.PARTICIPANT_IMPORT,
                study=study,
                details__file_sha256=digest,
            ).exists():
                result.errors = [ImportProblem(0, "", ALREADY_IMPORTED)]
                return result
        if _checked(study=study, user=user, sites=sites, csv_file=csv_file, result=result):
            _enrol(result.planned, result, user=user, now=timezone.now())
            if result.errors or not commit:
                transaction.set_rollback(True)
            else:
                result.committed = True
                audit_log(
                    action=AuditEvent.Action.PARTICIPANT_IMPORT,
                    user=user,
                    request=request,
                    study=study,
                    details={
                        "participants": len(result.rows),
                        "sites": result.sites,
                        "consent_methods": result.consent_methods,
                        "invitations": result.invitations,
                        "columns": result.columns,
                        "encoding": result.encoding,
                        "file_sha256": digest,
                    },
                )
    for other in result.foreign_matches:
        # Telling a coordinator that someone of another site is in the study is itself a
        # disclosure: each one is on the record of the participant concerned (outside the
        # preview's rolled-back transaction).
        audit_log(
            action=AuditEvent.Action.PARTICIPANT_IMPORT,
            user=user,
            request=request,
            participant=other,
            details={"refused_line": "already enrolled at another site", "preview": not commit},
        )
    if not result.committed:
        result.rows = [replace(row, participant_id=None) for row in result.rows]
    result.errors.sort(key=_problem_order)
    return result


def _checked(*, study: Study, user, sites, csv_file, result: ImportResult) -> bool:
    """Check every row (all problems at once) into ``result``; True when none was found."""
    ctx = _context(study=study, user=user, sites=sites, csv_file=csv_file)
    seen: dict[tuple[str, str], int] = {}
    result.errors = list(csv_file.problems)
    for line, values in csv_file.rows:
        row, problems = _row_check(line, values, ctx, seen)
        result.errors.extend(problems)
        if row is not None:
            result.planned.append(row)
    result.foreign_matches = ctx.foreign_matches
    return not result.errors


def _problem_order(problem: ImportProblem) -> tuple[int, int]:
    column = "email" if problem.column == "email/phone" else problem.column
    return problem.line, COLUMN_NAMES.index(column) if column in COLUMN_NAMES else -1


def _enrol(planned: list[_Planned], result: ImportResult, *, user, now: datetime) -> None:
    # Rows with a study ID first, so that the numbers given to the others pass over them.
    for row in sorted(planned, key=lambda p: (not p.participant.code, p.line)):
        participant, generated = row.participant, not row.participant.code
        try:
            participant_enrol(
                participant=participant,
                contact=row.contact,
                consent=row.consent,
                enrolled_by=user,
                plan_reminders=False,  # once for everyone, below
                now=now,
            )
        except ValidationError as exc:  # a change since the checks (a study ID taken meanwhile)
            result.errors.extend(_problems(row.line, exc))
            continue
        except IntegrityError:
            result.errors.append(
                ImportProblem(row.line, "study_id", "This study ID was taken meanwhile.")
            )
            continue
        contact, consent = row.contact, row.consent
        result.rows.append(
            ImportedRow(
                line=row.line,
                participant_id=participant.pk,
                code=participant.code,
                code_generated=generated,
                site_code=participant.site.code,
                enrolled_on=participant.enrolled_on,
                timezone=participant.timezone,
                language=participant.language,
                channel=participant.preferred_channel,
                consent_method=consent.method,
                consent_version=consent.version.version if consent.version else "",
                consent_date=consent.consented_on,
                name=mask_name(contact["first_name"], contact["last_name"]),
                email=mask_email(contact["email"]),
                phone=mask_phone(contact["phone"]),
                has_alternative_contacts=bool(contact["alternative_contacts"]),
                has_locator_notes=bool(contact["locator_notes"]),
            )
        )
    result.rows.sort(key=lambda r: r.line)
    ids = [row.participant_id for row in result.rows]
    assignments = list(Assignment.objects.filter(participant__in=ids).only("pk"))
    for start in range(0, len(assignments), PLAN_BATCH):
        reminders_plan(assignments=assignments[start : start + PLAN_BATCH], now=now)
    result.assignments = len(assignments)
    result.invitations = Message.objects.filter(
        assignment__participant__in=ids, sequence=0, status=Message.Status.QUEUED
    ).count()


# --- Carrying the file from the preview to the confirmation ---------------------------------
# The file travels in the preview page's form, encrypted and authenticated (Fernet: AES-CBC and
# HMAC-SHA256 under a key derived from SECRET_KEY for this purpose only) and compressed: the
# server keeps no copy of identifiers between the two steps, nothing readable sits in the page
# or the browser's history, and an altered, expired or another user's payload is refused.


class PayloadInvalid(Exception):
    pass


def _payload_cipher() -> Fernet:
    key = salted_hmac("surveys.participant_import.payload", "fernet", algorithm="sha256")
    return Fernet(base64.urlsafe_b64encode(key.digest()))


def import_payload_seal(*, study: Study, user, file_bytes: bytes) -> str:
    header = json.dumps({"study": study.pk, "user": user.pk}).encode()
    return _payload_cipher().encrypt(zlib.compress(header + b"\n" + file_bytes, 9)).decode()


def import_payload_open(*, payload: str, user) -> tuple[int, bytes]:
    """(study pk, file) of a sealed payload, or PayloadInvalid saying why."""
    cipher = _payload_cipher()
    try:
        sealed_at = cipher.extract_timestamp(payload.encode())
        header, _, file_bytes = zlib.decompress(cipher.decrypt(payload.encode())).partition(b"\n")
        sealed = json.loads(header)
    except (InvalidToken, ValueError, zlib.error) as exc:
        raise PayloadInvalid(
            "The confirmation could not be verified (it was altered or is not from this "
            "server). Nothing was imported: upload the file again."
        ) from exc
    if time.time() - sealed_at > PAYLOAD_MAX_AGE_SECONDS:
        raise PayloadInvalid(
            f"The preview is more than {PAYLOAD_MAX_AGE_SECONDS // 60} minutes old. Nothing "
            "was imported: upload the file again."
        )
    if sealed.get("user") != user.pk:
        raise PayloadInvalid("This preview was made by another user. Upload the file again.")
    return sealed["study"], file_bytes


# --- The template --------------------------------------------------------------------------


def import_template_csv(*, study: Study | None, sites: list[Site]) -> bytes:
    """The header row and one example row of fictional data, UTF-8 with a BOM so that Excel
    reads accents right."""
    site = sites[0] if sites else None
    today = timezone.localdate().isoformat()
    version = consent_version_current(study=study) if study is not None else None
    example = {
        "site": site.code if site else "NYC",
        "study_id": "",
        "enrolled_on": today,
        "timezone": site.timezone if site else "America/New_York",
        "language": study.default_language if study else Language.ENGLISH,
        "preferred_channel": Participant.Channel.EMAIL,
        "first_name": "Example",
        "last_name": "Participant",
        "email": EXAMPLE_EMAIL,
        "phone": EXAMPLE_PHONE,
        "alternative_contacts": "Example Sister (fictional), +1 555 010 0198",
        "locator_notes": "Fictional example row: replace it with your participants.",
        "consent_method": Consent.Method.WRITTEN,
        "consent_version": version.version if version else "",
        "consent_date": today,
        "consent_obtained_by": "",
    }
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMN_NAMES)
    writer.writerow(example[name] for name in COLUMN_NAMES)
    return ("\ufeff" + out.getvalue()).encode("utf-8")

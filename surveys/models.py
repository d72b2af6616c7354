"""The longitudinal survey engine's data model.

Research data (participants, assignments, responses) and identifying contact details are kept in
separate tables: ``ParticipantContact`` holds every identifier, encrypted at rest, so that exports,
analyses and researchers never need to touch it.
"""

import uuid
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator, validate_email
from django.db import models
from django.db.models import F, Q

from surveys.fields import EncryptedTextField, contact_lookup
from surveys.validators import validate_phone, validate_timezone, validate_variable_name


class Language(models.TextChoices):
    ENGLISH = "en", "English"
    SPANISH = "es", "Español"
    PERSIAN = "fa", "فارسی"


# Orderings name *_id columns, never relations: ordering by a relation pulls in that model's
# own ordering through joins on every query (a measured cost on the submission path).


class Study(models.Model):
    slug = models.SlugField(max_length=50, unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    default_language = models.CharField(
        max_length=8, choices=Language.choices, default=Language.ENGLISH
    )
    default_timezone = models.CharField(
        max_length=64, default="UTC", validators=[validate_timezone]
    )

    # Synthetic cohorts record how they were made (seed, planted effect) so analyses can be
    # checked against the truth.
    class ExportId(models.TextChoices):
        PSEUDONYM = "pseudonym", "A pseudonymous ID (a keyed hash, stable within the study)"
        STUDY_ID = "study_id", "The study ID"

    export_id = models.CharField(
        "participant ID in datasets",
        max_length=16,
        choices=ExportId.choices,
        default=ExportId.PSEUDONYM,
        help_text="What the pid column of every dataset export holds. The study ID is what "
        "staff see and write on paper: choose it only when the research team may link "
        "datasets to people.",
    )
    is_synthetic = models.BooleanField(default=False)
    synthetic_params = models.JSONField(default=dict, blank=True)
    crisis_resources = models.JSONField(
        default=dict,
        blank=True,
        help_text="Shown to a participant at once when an answer signals danger, by language: "
        '{"en": "…", "es": "…"}; include phone numbers.',
    )
    alert_email = models.EmailField(
        blank=True, help_text="Where alerts about dangerous answers are e-mailed."
    )
    pi_two_factor_required = models.BooleanField(
        default=False,
        help_text="Principal investigators of this study must sign in with a code from an "
        "authenticator app as well as their password.",
    )
    # No invitation or reminder goes out between these local times of the participant (the
    # interval may wrap midnight); a message due then waits for the end.
    quiet_hours_start = models.TimeField(default=time(21, 0))
    quiet_hours_end = models.TimeField(default=time(9, 0))
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "studies"
        ordering = ("name",)

    def __str__(self) -> str:
        return self.name


class Site(models.Model):
    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="sites")
    code = models.CharField(
        max_length=12,
        help_text="Short prefix of this site's study IDs, e.g. NYC gives NYC-0001.",
    )
    name = models.CharField(max_length=200)
    timezone = models.CharField(max_length=64, default="UTC", validators=[validate_timezone])
    # The number of the last study ID given at this site (surveys.services.participant_code_next).
    last_number = models.PositiveIntegerField(default=0, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("study_id", "code")
        constraints = [
            models.UniqueConstraint(fields=("study", "code"), name="site_code_unique_in_study")
        ]

    def __str__(self) -> str:
        return f"{self.code} — {self.name}"


class Participant(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        WITHDRAWN = "withdrawn", "Withdrawn"
        LOST_TO_FOLLOW_UP = "lost", "Lost to follow-up"
        COMPLETED = "completed", "Completed the study"
        DECEASED = "deceased", "Deceased"

    class Channel(models.TextChoices):
        EMAIL = "email", "E-mail"
        SMS = "sms", "Text message (SMS)"

    study = models.ForeignKey(Study, on_delete=models.PROTECT, related_name="participants")
    site = models.ForeignKey(Site, on_delete=models.PROTECT, related_name="participants")
    # The codes of the sites the participant was moved from: files exported while they were
    # there hold their rows (an erasure deletes those too).
    former_sites = models.JSONField(default=list, blank=True, editable=False)
    code = models.CharField(
        "study ID", max_length=32, help_text="Pseudonymous ID, never a name or contact detail."
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    enrolled_on = models.DateField()
    timezone = models.CharField(max_length=64, default="UTC", validators=[validate_timezone])
    language = models.CharField(max_length=8, choices=Language.choices, default=Language.ENGLISH)
    preferred_channel = models.CharField(
        max_length=8, choices=Channel.choices, default=Channel.EMAIL
    )
    # An optional 4–6 digit PIN the participant sets for a shared phone (surveys/access.py):
    # a password hash, the wrong tries in a row, and until when tries are refused.
    pin_hash = models.CharField(max_length=128, blank=True, editable=False)
    pin_failures = models.PositiveSmallIntegerField(default=0, editable=False)
    pin_locked_until = models.DateTimeField(null=True, blank=True, editable=False)
    # Raised when the PIN is set, changed or removed and when links are revoked: participant
    # sessions started before then stop working (a lost phone, a shared one).
    access_epoch = models.PositiveIntegerField(default=0, editable=False)
    # Opt-outs of invitations and reminders, per channel: the unsubscribe link (e-mail) and a
    # STOP reply (SMS). The other channel is used while it is not opted out too.
    email_opt_out_at = models.DateTimeField(null=True, blank=True)
    sms_opt_out_at = models.DateTimeField(null=True, blank=True)
    # Enrolled to give consent on their own phone (surveys/consent.py): their link opens the
    # consent text until they agree; no survey is shown before.
    consent_pending = models.BooleanField(default=False, editable=False)
    # When identifiers were erased after a withdrawal (surveys/consent.py): the contact
    # details, typed consent names and free-text notes are gone; answers stay, de-identified.
    identifiers_erased_at = models.DateTimeField(null=True, blank=True, editable=False)
    answers_erased_at = models.DateTimeField(null=True, blank=True, editable=False)
    # The API client's key for the enrolment request (a UUID it made): the same request sent
    # again after a lost reply finds this participant instead of enrolling the person twice.
    enrolment_client_id = models.UUIDField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("study_id", "code")
        constraints = [
            models.UniqueConstraint(fields=("study", "code"), name="participant_code_unique"),
            models.UniqueConstraint(
                fields=("study", "enrolment_client_id"),
                condition=Q(enrolment_client_id__isnull=False),
                name="participant_enrolment_client_id_unique",
            ),
        ]
        indexes = [models.Index(fields=("study", "status"), name="participant_study_status")]

    def __str__(self) -> str:
        return self.code

    def clean(self) -> None:
        if self.site_id and self.study_id and self.site.study_id != self.study_id:
            raise ValidationError({"site": "The site belongs to another study."})


class ParticipantLink(models.Model):
    """A personal link (``/p/<token>``) that opens a participant's own surveys.

    Only a hash of the token is stored: the token itself exists in the message that carried it.
    """

    participant = models.ForeignKey(Participant, on_delete=models.CASCADE, related_name="links")
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("participant_id", "-created_at")

    def __str__(self) -> str:
        return f"Link of {self.participant.code} until {self.expires_at:%Y-%m-%d}"


class ParticipantStatusChange(models.Model):
    """One change of a participant's status: who, when, from what, to what and why."""

    participant = models.ForeignKey(
        Participant, on_delete=models.PROTECT, related_name="status_changes"
    )
    from_status = models.CharField(max_length=16, choices=Participant.Status.choices)
    to_status = models.CharField(max_length=16, choices=Participant.Status.choices)
    # Staff's free text may name people ("her partner found out"): encrypted like the contact
    # details, and blanked when identifiers are erased.
    reason = EncryptedTextField(blank=True)
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    changed_at = models.DateTimeField()

    class Meta:
        ordering = ("participant_id", "changed_at")

    def __str__(self) -> str:
        return f"{self.participant.code}: {self.from_status} → {self.to_status}"


class ParticipantContact(models.Model):
    """Identifying and locator details, encrypted at rest and kept apart from research data."""

    participant = models.OneToOneField(
        Participant, on_delete=models.CASCADE, primary_key=True, related_name="contact"
    )
    first_name = EncryptedTextField(blank=True)
    last_name = EncryptedTextField(blank=True)
    email = EncryptedTextField(blank=True, validators=[validate_email])
    phone = EncryptedTextField(blank=True, validators=[validate_phone])
    alternative_contacts = EncryptedTextField(
        blank=True, help_text="Other ways to reach the participant (family, friends, case worker)."
    )
    locator_notes = EncryptedTextField(blank=True)
    # Keyed digests of the e-mail and phone (surveys.fields.contact_lookup): how "send me a new
    # link" finds a participant without decrypting every row. Kept in step by save().
    email_lookup = models.CharField(max_length=64, blank=True, db_index=True, editable=False)
    phone_lookup = models.CharField(max_length=64, blank=True, db_index=True, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    # The longest text each field takes, in characters as typed. The columns hold ciphertext
    # (a third longer, and more) in unlimited text, so the limits on the plain text are
    # checked here, not by the database. The phone's limit is validate_phone's.
    MAX_LENGTHS = {
        "first_name": 200,
        "last_name": 200,
        "email": 254,
        "alternative_contacts": 2000,
        "locator_notes": 2000,
    }

    def __str__(self) -> str:
        # Shown as the admin inline's title and kept in the admin's change history: the study
        # ID only, never a name, address or number.
        return f"Contact details of {self.participant.code}"

    def save(self, *args, **kwargs):
        self.lookups_refresh()
        update_fields = kwargs.get("update_fields")
        if update_fields is not None:
            kwargs["update_fields"] = {*update_fields, "email_lookup", "phone_lookup"}
        super().save(*args, **kwargs)

    def clean(self) -> None:
        errors = {
            name: f"Too long: {len(value):,} characters, at most {limit:,}."
            for name, limit in self.MAX_LENGTHS.items()
            if len(value := getattr(self, name) or "") > limit
        }
        if errors:
            raise ValidationError(errors)

    def lookups_refresh(self) -> None:
        """Recompute the digests (save() does; bulk_create callers call it themselves)."""
        self.email_lookup = contact_lookup("email", self.email)
        self.phone_lookup = contact_lookup("phone", self.phone)


class Instrument(models.Model):
    """A questionnaire. Its content lives in versions; a response keeps the version it answered.

    A trigger copies the split's answers again when ``slug`` changes (``surveys.subgroup_copy``,
    PostgreSQL); a migration that alters ``slug`` first calls ``triggers_drop``."""

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="instruments")
    slug = models.SlugField(max_length=50)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    # What participants see in other languages, e.g. {"es": "1 mes"}; ``name`` otherwise.
    names = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("study_id", "slug")
        constraints = [
            models.UniqueConstraint(fields=("study", "slug"), name="instrument_slug_unique")
        ]

    def __str__(self) -> str:
        return self.name

    def name_in(self, language: str) -> str:
        return (self.names or {}).get(language) or self.name

    @property
    def current_version(self) -> "InstrumentVersion | None":
        return self.versions.order_by("-number").first()


class InstrumentVersion(models.Model):
    instrument = models.ForeignKey(Instrument, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    note = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("instrument_id", "number")
        constraints = [
            models.UniqueConstraint(
                fields=("instrument", "number"), name="instrument_version_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.instrument.slug} v{self.number}"


class Item(models.Model):
    """One question (or a descriptive or calculated field) of an instrument version, as data.

    Texts are JSON objects keyed by language code (``{"en": "...", "es": "..."}``); choices are
    ``[{"code": "1", "label": {"en": "..."}}, ...]``.
    """

    class Kind(models.TextChoices):
        INTEGER = "integer", "Integer"
        DECIMAL = "decimal", "Decimal number"
        YESNO = "yesno", "Yes / no"
        SINGLE = "single", "Single choice"
        MULTIPLE = "multiple", "Multiple choice"
        SLIDER = "slider", "Slider"
        DATE = "date", "Date"
        TEXT = "text", "Short text"
        NOTES = "notes", "Long text"
        DESCRIPTIVE = "descriptive", "Descriptive text"
        CALC = "calc", "Calculated"

    version = models.ForeignKey(InstrumentVersion, on_delete=models.CASCADE, related_name="items")
    position = models.PositiveIntegerField()
    variable = models.CharField(max_length=100, validators=[validate_variable_name])
    kind = models.CharField(max_length=16, choices=Kind.choices)
    label = models.JSONField(default=dict)
    note = models.JSONField(default=dict, blank=True)
    section_header = models.JSONField(default=dict, blank=True)
    choices = models.JSONField(default=list, blank=True)
    required = models.BooleanField(default=False)
    # Text, as in REDCap: a number, a date (2026-01-31) or "today"/"now", read by the item's kind.
    min_value = models.CharField(max_length=40, blank=True)
    max_value = models.CharField(max_length=40, blank=True)
    # Kind-specific settings: slider end labels, text validation type, decimals, etc.
    options = models.JSONField(default=dict, blank=True)
    branching = models.TextField(blank=True, help_text="REDCap-style show-if expression.")
    calculation = models.TextField(blank=True, help_text="Formula of a calculated item.")
    matrix_group = models.CharField(max_length=100, blank=True)
    identifier = models.BooleanField(
        default=False, help_text="Identifying data: left out of de-identified exports."
    )
    annotation = models.TextField(blank=True)

    class Meta:
        ordering = ("version_id", "position")
        constraints = [
            models.UniqueConstraint(fields=("version", "variable"), name="item_variable_unique"),
        ]

    def __str__(self) -> str:
        return self.variable

    def text(self, language: str = "en") -> str:
        return self.label.get(language) or self.label.get("en", "")


class Wave(models.Model):
    """A follow-up point: due ``offset_days`` after enrolment, answerable within its window."""

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="waves")
    slug = models.SlugField(max_length=30)
    name = models.CharField(max_length=100)
    # What participants see in other languages, e.g. {"es": "1 mes"}; ``name`` otherwise.
    names = models.JSONField(default=dict, blank=True)
    position = models.PositiveSmallIntegerField()
    offset_days = models.PositiveIntegerField(help_text="Days after enrolment the wave is due.")
    window_before_days = models.PositiveIntegerField(default=0)
    window_after_days = models.PositiveIntegerField(default=14)
    recurrence_days = models.PositiveIntegerField(
        null=True,
        blank=True,
        # 0 would divide by zero in the check-ins' periodic task, which stopped it for every
        # study (found by review).
        validators=[MinValueValidator(1)],
        help_text="For recurring check-ins (7 = weekly); empty for a single wave.",
    )
    recurrence_until_days = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Recurring check-ins only: days after enrolment of the last one; empty = "
        "until the last single wave is due.",
    )
    is_active = models.BooleanField(default=True)
    instruments = models.ManyToManyField(Instrument, through="WaveInstrument", related_name="waves")

    class Meta:
        ordering = ("study_id", "position")
        constraints = [
            models.UniqueConstraint(fields=("study", "slug"), name="wave_slug_unique"),
            models.CheckConstraint(
                condition=Q(recurrence_days__isnull=True) | Q(recurrence_days__gte=1),
                name="wave_recurrence_at_least_a_day",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        # A wave's slug names the wide dataset's columns (``craving_m1``), where a hyphen is
        # an underscore, and SPSS reads names without case: "m-1" beside "m_1" or "M1" beside
        # "m1" would give two waves one set of columns (found by review).
        from surveys.datasets.shapes import wave_suffix  # (datasets read these models)

        if not self.study_id or not self.slug:
            return

        def key(slug: str) -> str:
            return wave_suffix(slug, 0, recurring=False).casefold()

        for other in Wave.objects.filter(study_id=self.study_id).exclude(pk=self.pk):
            if other.slug != self.slug and key(other.slug) == key(self.slug):
                raise ValidationError(
                    {
                        "slug": f"Too like the wave “{other.slug}”: datasets name columns by "
                        "wave, with hyphens as underscores and without case. Choose another."
                    }
                )

    def name_in(self, language: str) -> str:
        return (self.names or {}).get(language) or self.name


class WaveInstrument(models.Model):
    wave = models.ForeignKey(Wave, on_delete=models.CASCADE)
    instrument = models.ForeignKey(Instrument, on_delete=models.CASCADE)
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ("wave_id", "position")
        constraints = [
            models.UniqueConstraint(fields=("wave", "instrument"), name="wave_instrument_unique")
        ]

    def __str__(self) -> str:
        return f"{self.wave} · {self.instrument}"

    def clean(self) -> None:
        if self.wave_id and self.instrument_id and self.wave.study_id != self.instrument.study_id:
            raise ValidationError({"instrument": "The instrument belongs to another study."})


class Assignment(models.Model):
    """A participant's occurrence of a wave, with its window in absolute (UTC) time."""

    class Status(models.TextChoices):
        SCHEDULED = "scheduled", "Scheduled"
        OPEN = "open", "Open"
        IN_PROGRESS = "in_progress", "In progress"
        COMPLETED = "completed", "Completed"
        MISSED = "missed", "Missed"
        CANCELLED = "cancelled", "Cancelled"

    # PROTECT: research data is never removed as a side effect; erasure is an explicit service.
    participant = models.ForeignKey(
        Participant,
        on_delete=models.PROTECT,
        related_name="assignments",
        db_index=False,  # assignment_unique (participant, wave, occurrence) leads with it
    )
    wave = models.ForeignKey(Wave, on_delete=models.PROTECT, related_name="assignments")
    occurrence = models.PositiveIntegerField(
        default=0, help_text="0 for a single wave; 0, 1, 2… for a recurring check-in."
    )
    opens_at = models.DateTimeField()
    due_at = models.DateTimeField()
    closes_at = models.DateTimeField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.SCHEDULED)
    status_changed_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    # Kept by surveys.dispatch.message_send as each invitation or reminder goes out (messages
    # never go after completion): the retention dashboard reads the time from the first
    # message to completion and the message people completed after from here, not from
    # every message row.
    messages_sent = models.PositiveSmallIntegerField(default=0, editable=False)
    first_message_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("participant_id", "due_at")
        constraints = [
            models.UniqueConstraint(
                fields=("participant", "wave", "occurrence"), name="assignment_unique"
            ),
            models.CheckConstraint(
                condition=Q(opens_at__lte=F("due_at")) & Q(due_at__lt=F("closes_at")),
                name="assignment_window_ordered",
            ),
        ]
        indexes = [
            models.Index(fields=("status", "opens_at"), name="assignment_status_opens"),
            models.Index(fields=("status", "closes_at"), name="assignment_status_closes"),
        ]

    def __str__(self) -> str:
        occurrence = f" #{self.occurrence + 1}" if self.wave.recurrence_days else ""
        return f"{self.participant.code} · {self.wave.name}{occurrence}"

    def local_window(self) -> tuple[datetime, datetime, datetime]:
        """Opens, due and closes in the participant's own time zone."""
        tz = ZoneInfo(self.participant.timezone)
        return (
            self.opens_at.astimezone(tz),
            self.due_at.astimezone(tz),
            self.closes_at.astimezone(tz),
        )

    def first_day(self) -> date:
        """The first day on which the survey can be answered, in the participant's time zone
        (``opens_at`` is its local midnight)."""
        return self.opens_at.astimezone(ZoneInfo(self.participant.timezone)).date()

    def due_day(self) -> date:
        """The day the survey is due, in the participant's time zone (``due_at`` is its local
        midnight: in UTC, east of Greenwich, the day before)."""
        return self.due_at.astimezone(ZoneInfo(self.participant.timezone)).date()

    def last_day(self) -> date:
        """The last day on which the survey can be answered, in the participant's time zone:
        the window closes at the local midnight that starts the day after, so that midnight's
        own date is one day too late to show."""
        tz = ZoneInfo(self.participant.timezone)
        return (self.closes_at - timedelta(microseconds=1)).astimezone(tz).date()


class Response(models.Model):
    """Answers to one instrument of one assignment: a draft that becomes submitted in place.

    On PostgreSQL, triggers copy the split's answers out of ``answers`` into SubgroupAnswer
    (``surveys.subgroup_copy``): a migration that alters ``answers`` or ``status`` first
    calls ``subgroup_copy.triggers_drop``; ``migrate`` puts them back."""

    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        SUBMITTED = "submitted", "Submitted"

    assignment = models.ForeignKey(
        Assignment,
        on_delete=models.PROTECT,
        related_name="responses",
        db_index=False,  # response_one_per_instrument (assignment, instrument) leads with it
    )
    instrument = models.ForeignKey(Instrument, on_delete=models.PROTECT, related_name="responses")
    instrument_version = models.ForeignKey(
        InstrumentVersion, on_delete=models.PROTECT, related_name="responses"
    )
    client_id = models.UUIDField(
        unique=True,
        default=uuid.uuid4,
        help_text="Generated by the client; makes submits idempotent.",
    )
    answers = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.DRAFT)
    started_at = models.DateTimeField()
    updated_at = models.DateTimeField(auto_now=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    changes_refused_at = models.DateTimeField(
        null=True,
        blank=True,
        editable=False,
        help_text="When the survey was sent again under its client id with other answers (the "
        "first reply lost, an answer changed meanwhile): the answers sent first are kept, and "
        "the participant's done page says the later changes were not saved.",
    )
    resume_at = models.CharField(
        max_length=100,
        blank=True,
        help_text="Where a draft was left: the first question of the screen the participant "
        "was on, so the survey resumes there on any device.",
    )

    class Meta:
        ordering = ("assignment_id", "instrument_id")
        constraints = [
            models.UniqueConstraint(
                fields=("assignment", "instrument"), name="response_one_per_instrument"
            ),
            models.CheckConstraint(
                condition=Q(status="draft") | Q(submitted_at__isnull=False),
                name="response_submitted_has_time",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.instrument.slug} for {self.assignment}"


class SubgroupVariable(models.Model):
    """An answer the retention dashboard splits by (``surveys.retention``'s registry): the
    instrument's slug and the variable. Kept equal to the registry after every ``migrate``
    (``surveys.subgroup_copy``); a row means its answers are in ``SubgroupAnswer``."""

    instrument_slug = models.SlugField(max_length=50)
    variable = models.CharField(max_length=100)
    filled_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=("instrument_slug", "variable"), name="subgroup_variable_once"
            )
        ]

    def __str__(self) -> str:
        return f"{self.instrument_slug}.{self.variable}"


class SubgroupAnswer(models.Model):
    """One submitted answer the retention dashboard splits by, copied out of the response's
    JSON so that a split reads a narrow table, not every response (``surveys.subgroup_copy``).
    Written and deleted only by PostgreSQL triggers on the responses and instruments, never by
    Python: the references are plain columns (no constraint, nothing for Django's deletion to
    collect), so deleting responses stays one statement and their copies go with them."""

    response = models.ForeignKey(
        Response, on_delete=models.DO_NOTHING, related_name="+", db_constraint=False, db_index=False
    )
    participant = models.ForeignKey(
        Participant,
        on_delete=models.DO_NOTHING,
        related_name="+",
        db_constraint=False,
        db_index=False,
    )
    wave = models.ForeignKey(
        Wave, on_delete=models.DO_NOTHING, related_name="+", db_constraint=False, db_index=False
    )
    instrument = models.ForeignKey(
        Instrument,
        on_delete=models.DO_NOTHING,
        related_name="+",
        db_constraint=False,
        db_index=False,
    )
    variable = models.CharField(max_length=100)
    answer = models.TextField(null=True)  # noqa: DJ001 — NULL: no answer, unlike ""

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=("response", "variable"), name="subgroup_answer_once")
        ]
        indexes = [
            models.Index(fields=("wave", "instrument", "variable"), name="subgroup_answer_source")
        ]

    def __str__(self) -> str:
        return f"{self.variable} of response {self.response_id}"


class StaffRole(models.Model):
    """A staff member's role in one study; coordinators are limited to their sites."""

    class Role(models.TextChoices):
        PRINCIPAL_INVESTIGATOR = "pi", "Principal investigator"
        COORDINATOR = "coordinator", "Study coordinator"
        RESEARCHER = "researcher", "Researcher (de-identified data only)"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="study_roles"
    )
    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="staff_roles")
    role = models.CharField(max_length=16, choices=Role.choices)
    sites = models.ManyToManyField(
        Site, blank=True, related_name="staff_roles", help_text="Coordinators only: their sites."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("study_id", "user_id")
        constraints = [
            models.UniqueConstraint(fields=("user", "study"), name="staff_role_one_per_study")
        ]

    def __str__(self) -> str:
        return f"{self.user} — {self.get_role_display()} in {self.study}"


ROLE_GROUP_NAMES = {
    StaffRole.Role.PRINCIPAL_INVESTIGATOR: "Principal investigators",
    StaffRole.Role.COORDINATOR: "Coordinators",
    StaffRole.Role.RESEARCHER: "Researchers",
}


class SafetyAlert(models.Model):
    """An answer that signals danger (an overdose, the highest craving): the participant saw
    crisis resources at once; the study team follows up."""

    study = models.ForeignKey(Study, on_delete=models.PROTECT, related_name="safety_alerts")
    participant = models.ForeignKey(
        Participant, on_delete=models.PROTECT, related_name="safety_alerts"
    )
    assignment = models.ForeignKey(
        Assignment, on_delete=models.PROTECT, related_name="safety_alerts"
    )
    variable = models.CharField(max_length=100)
    question = models.TextField(help_text="The question as the participant read it.")
    answer = models.CharField(max_length=200)
    created_at = models.DateTimeField()
    emailed_at = models.DateTimeField(null=True, blank=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    # Staff's free text may name people or places: encrypted at rest like the contact details.
    follow_up_note = EncryptedTextField(blank=True)

    class Meta:
        ordering = ("-created_at",)
        constraints = [
            # One alert per question per survey, however often the draft is saved.
            models.UniqueConstraint(
                fields=("assignment", "variable"), name="safety_alert_once_per_question"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.participant.code} · {self.variable}"


class DiaryEntry(models.Model):
    """A meeting the participant logged on their home page ("log a meeting").

    ``group`` and ``format`` are codes from the diary choices an app registers with the engine
    (surveys/diary.py; the recovery battery registers its fellowships and meeting formats).
    """

    participant = models.ForeignKey(
        Participant, on_delete=models.CASCADE, related_name="diary_entries"
    )
    group = models.CharField(max_length=16)
    format = models.CharField(max_length=16)
    occurred_on = models.DateField()
    # Made by the phone's form: the same entry sent twice (a double tap, a resent form) is
    # stored once.
    client_id = models.UUIDField(default=uuid.uuid4, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("participant_id", "-occurred_on", "-id")
        verbose_name_plural = "diary entries"
        indexes = [
            models.Index(fields=("participant", "occurred_on"), name="diary_participant_date")
        ]

    def __str__(self) -> str:
        # The admin's title of the entry (and its line in a deletion's list): the study ID,
        # never the database id or a contact detail.
        return f"{self.participant.code}: {self.group}/{self.format} on {self.occurred_on}"


class ReminderRule(models.Model):
    """When a wave's messages go: the invitation as the window opens, then reminders.

    A rule without a wave is the study's default, used by waves that have no rules of their own.
    Times are the participant's local times; quiet hours move a message to their end.
    """

    class Kind(models.TextChoices):
        INVITATION = "invitation", "Invitation when the window opens"
        EVERY = "every", "Every N hours, up to X times"
        WEEKDAY = "weekday", "The next given weekday (or any day) at HH:MM"
        EXACT = "exact", "An exact date and time"
        LAST_CALL = "last_call", "A last call N days before the window closes"

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="reminder_rules")
    wave = models.ForeignKey(
        "Wave", null=True, blank=True, on_delete=models.CASCADE, related_name="reminder_rules"
    )
    kind = models.CharField(max_length=16, choices=Kind.choices)
    position = models.PositiveSmallIntegerField(default=0)
    every_hours = models.PositiveIntegerField(
        null=True, blank=True, help_text="Every: hours between reminders (48 = every 2 days)."
    )
    times = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="Every: how many reminders at most."
    )
    weekday = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        choices=[(0, "Monday"), (1, "Tuesday"), (2, "Wednesday"), (3, "Thursday"),
                 (4, "Friday"), (5, "Saturday"), (6, "Sunday")],
        help_text="Weekday: the day; empty = the next day.",
    )  # fmt: skip
    at_time = models.TimeField(
        null=True, blank=True, help_text="Weekday, exact date and last call: the local time."
    )
    on_date = models.DateField(null=True, blank=True, help_text="Exact: the local date.")
    days_before_close = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="Last call: days before the window closes."
    )
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ("study_id", "wave_id", "position", "id")

    def __str__(self) -> str:
        return f"{self.get_kind_display()} ({self.wave or 'study default'})"

    def clean(self) -> None:
        if self.wave_id and self.study_id and self.wave.study_id != self.study_id:
            raise ValidationError({"wave": "The wave belongs to another study."})


class Message(models.Model):
    """One planned invitation or reminder: an assignment × sequence × channel, and what became
    of it. Sequence 0 is the invitation."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"
        SKIPPED = "skipped", "Skipped"
        REVIEW = "review", "Interrupted: review (may have been sent)"

    Channel = Participant.Channel  # the same two channels as a participant's preference

    assignment = models.ForeignKey("Assignment", on_delete=models.CASCADE, related_name="messages")
    sequence = models.PositiveSmallIntegerField()
    channel = models.CharField(max_length=8, choices=Channel.choices)
    rule = models.ForeignKey(
        ReminderRule, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    scheduled_at = models.DateTimeField()
    # Which message of which rule this is ("<rule id>:<n>", n counting the rule's messages
    # from 0; several, comma-separated, when rules met on one minute): a message that went
    # is never planned again, whenever an edit or "send now" moved it (surveys.reminders).
    plan_key = models.CharField(max_length=200, blank=True, editable=False)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.QUEUED)
    reason = models.CharField(max_length=200, blank=True)
    provider_id = models.CharField(max_length=100, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    claimed_at = models.DateTimeField(null=True, blank=True)
    # Set (and committed) just before the provider is called: a row found in "sending" with
    # this set may have gone out, so it is never sent again blindly.
    send_started_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("assignment_id", "sequence")
        constraints = [
            models.UniqueConstraint(
                fields=("assignment", "sequence", "channel"), name="message_once_per_channel"
            )
        ]
        indexes = [
            models.Index(
                fields=("scheduled_at",),
                name="message_due",
                condition=Q(status="queued"),
            ),
            models.Index(fields=("status", "claimed_at"), name="message_status_claimed"),
        ]

    def __str__(self) -> str:
        # The survey it is for by study ID and wave ("SMS #2 for NYC-0042 · 1 month"), as its
        # admin page is titled; the admin's message list brings both with each row.
        return f"{self.get_channel_display()} #{self.sequence} for {self.assignment}"


class ContactAttempt(models.Model):
    """A coordinator's attempt to reach a participant (the contact log behind the call list)."""

    class Method(models.TextChoices):
        CALL = "call", "Phone call"
        TEXT = "text", "Text message"
        EMAIL = "email", "E-mail"
        IN_PERSON = "in_person", "In person"

    class Outcome(models.TextChoices):
        REACHED = "reached", "Reached"
        COMPLETED = "completed", "Reached, survey completed"
        LEFT_MESSAGE = "left_message", "Left a message"
        NO_ANSWER = "no_answer", "No answer"
        WRONG_NUMBER = "wrong_number", "Wrong number or address"

    participant = models.ForeignKey(
        Participant, on_delete=models.CASCADE, related_name="contact_attempts"
    )
    assignment = models.ForeignKey(
        "Assignment", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    method = models.CharField(max_length=12, choices=Method.choices)
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    # Free text may hold identifying details: encrypted at rest, never exported by default.
    note = EncryptedTextField(blank=True)
    attempted_at = models.DateTimeField()
    by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ("participant_id", "-attempted_at")
        indexes = [
            models.Index(fields=("participant", "attempted_at"), name="contact_attempt_latest")
        ]

    def __str__(self) -> str:
        return (
            f"{self.get_method_display()} to {self.participant.code}: {self.get_outcome_display()}"
        )


class WrittenOnce(models.Model):
    """Rows kept as written: ``save`` refuses an update and ``delete`` refuses. (A queryset's
    update or delete bypasses this on purpose: the erasure service's one exception.)"""

    class Meta:
        abstract = True

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise ValidationError(f"A {self._meta.verbose_name} is kept as written.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValidationError(f"A {self._meta.verbose_name} is kept as written.")


class ConsentVersion(models.Model):
    """An approved version of a study's consent text, in each language participants read."""

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="consent_versions")
    version = models.CharField(
        max_length=20, help_text="As the ethics board approved it: 1.0, 2.1…"
    )
    approved_on = models.DateField(help_text="The date of approval; the newest is current.")
    texts = models.JSONField(
        default=dict,
        help_text='The consent text by language: {"en": "…", "es": "…"}. Paragraphs are '
        "separated by blank lines.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("study_id", "-approved_on", "-id")
        constraints = [
            models.UniqueConstraint(fields=("study", "version"), name="consent_version_unique")
        ]

    def __str__(self) -> str:
        return f"version {self.version} ({self.approved_on:%Y-%m-%d})"

    def clean(self) -> None:
        if not isinstance(self.texts, dict) or not any(
            isinstance(text, str) and text.strip() for text in self.texts.values()
        ):
            raise ValidationError({"texts": "Give the consent text in at least one language."})
        unknown = set(self.texts) - set(Language.values)
        if unknown:
            raise ValidationError({"texts": f"Unknown language(s): {', '.join(sorted(unknown))}."})

    def text_in(self, language: str) -> tuple[str, str]:
        """(language, text): the participant's language, else the study's, else any."""
        for lang in (language, self.study.default_language, *self.texts):
            text = self.texts.get(lang)
            if isinstance(text, str) and text.strip():
                return lang, text
        return language, ""


class Consent(WrittenOnce):
    """A participant's consent: to which version, how, when and who obtained it.

    Kept as written (``WrittenOnce``). Identifier erasure after a withdrawal is the one
    exception, through its service, and blanks the typed name.
    """

    class Method(models.TextChoices):
        WRITTEN = "written", "Signed on paper"
        VERBAL = "verbal", "Verbal, documented by staff"
        ELECTRONIC = "electronic", "E-consent on the participant's phone"

    participant = models.ForeignKey(Participant, on_delete=models.PROTECT, related_name="consents")
    version = models.ForeignKey(ConsentVersion, on_delete=models.PROTECT, related_name="consents")
    method = models.CharField(max_length=12, choices=Method.choices)
    consented_on = models.DateField()
    obtained_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The staff member who obtained it (empty for e-consent).",
    )
    # E-consent: what the participant read (in which language), the name they typed and the
    # moment they agreed. The text is kept as shown, so a later version changes nothing here.
    language = models.CharField(max_length=8, choices=Language.choices, blank=True)
    text = models.TextField(blank=True)
    text_sha256 = models.CharField(max_length=64, blank=True)
    typed_name = EncryptedTextField(blank=True)
    agreed_at = models.DateTimeField(null=True, blank=True)
    recorded_at = models.DateTimeField()
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ("participant_id", "recorded_at")

    def __str__(self) -> str:
        return f"Consent of {self.participant.code} to {self.version} ({self.get_method_display()})"


class AuditEvent(WrittenOnce):
    """Append-only: who did what to which record, when and from where.

    Written by ``surveys.audit.audit_log``; never changed or deleted (``WrittenOnce``).
    """

    class Action(models.TextChoices):
        RESPONSE_VIEW = "response_view", "Opened a response"
        CONSENT_VIEW = "consent_view", "Opened a consent record"
        IDENTIFIERS_ERASE = "identifiers_erase", "Erased a participant's identifiers"
        PARTICIPANT_IMPORT = "participant_import", "Imported participants from a file"
        STATUS_CHANGE = "status_change", "Changed a participant's status"
        DATASET_EXPORT = "dataset_export", "Exported a dataset"
        EXPORT_DOWNLOAD = "export_download", "Downloaded a background export"
        ANALYSIS_RUN = "analysis_run", "Ran analyses on a dataset"
        ANALYSIS_DOWNLOAD = "analysis_download", "Opened or downloaded an analysis's results"
        LOGIN = "login", "Signed in"
        LOGIN_FAILED = "login_failed", "Failed to sign in"
        LOGOUT = "logout", "Signed out"
        ROLE_CHANGE = "role_change", "Gave, changed or removed a staff role"
        KEYS_ROTATE = "keys_rotate", "Re-encrypted identifiers under a new key"
        AUDIT_EXPORT = "audit_export", "Downloaded audit events"
        TWO_FACTOR_ON = "two_factor_on", "Turned on two-factor sign-in"
        TWO_FACTOR_OFF = "two_factor_off", "Removed someone's two-factor sign-in"
        ANSWERS_ERASE = "answers_erase", "Erased a participant's answers"
        CONTACT_VIEW = "contact_view", "Saw participants' contact details"
        CONTACT_CHANGE = "contact_change", "Changed a participant's contact details"
        RESPONSE_CHANGE = "response_change", "Entered or changed answers for a participant"

    at = models.DateTimeField(db_index=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    username = models.CharField(max_length=150, blank=True)
    action = models.CharField(max_length=32, choices=Action.choices)
    study = models.ForeignKey(
        Study, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    participant = models.ForeignKey(
        Participant,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,  # audit_participant_at (participant, at) leads with it
    )
    object_type = models.CharField(max_length=50, blank=True)
    object_id = models.CharField(max_length=50, blank=True)
    # Never an identifier value: codes, counts, field names.
    details = models.JSONField(default=dict, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        ordering = ("-at", "-id")
        indexes = [models.Index(fields=("participant", "at"), name="audit_participant_at")]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.username or '—'}: {self.get_action_display()}"


class StaffTwoFactor(models.Model):
    """A staff member's authenticator app (``surveys.totp``): the shared secret, encrypted at
    rest; in use once confirmed with a first code. The last step used refuses a code twice."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="two_factor"
    )
    secret = EncryptedTextField()
    created_at = models.DateTimeField()
    confirmed_at = models.DateTimeField(null=True, blank=True)
    last_step = models.BigIntegerField(default=-1)

    class Meta:
        verbose_name = "two-factor sign-in"

    def __str__(self) -> str:
        return f"{self.user} ({'on' if self.confirmed_at else 'being set up'})"


class StaffApiToken(models.Model):
    """A staff member's key to the API (``Authorization: Bearer <key>``): shown once when made,
    stored only as a hash, expiring, revocable. It acts with its owner's roles and scope."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100, help_text="What it is for, e.g. 'R script, laptop'.")
    prefix = models.CharField(max_length=8, editable=False, help_text="The key's first characters.")
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(editable=False)
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    scopes = models.CharField(
        max_length=64,
        default="read",
        editable=False,
        help_text="What the key may do, space-separated (surveys.tokens.SCOPES).",
    )

    class Meta:
        ordering = ("user_id", "-created_at")
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def scope_set(self) -> frozenset[str]:
        return frozenset(self.scopes.split())


class DatasetExportJob(models.Model):
    """A dataset export run in the background (``surveys.exports.export_job_run``) because its
    participant scope is large. The file lives under ``settings.EXPORT_ROOT`` (never MEDIA or
    STATIC) under a random name; only its creator downloads it, until ``expires_at``."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Ready to download"
        FAILED = "failed", "Failed"
        EXPIRED = "expired", "Expired"

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="export_jobs")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="export_jobs"
    )
    created_at = models.DateTimeField()
    # The ExportSpec as a dict (``ExportSpec.to_dict``): dates as ISO text.
    spec = models.JSONField(default=dict)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.QUEUED)
    progress = models.PositiveSmallIntegerField(default=0, help_text="Per cent, 0–100.")
    # Why it failed, for the user: never a traceback, never participant data.
    message = models.TextField(blank=True)
    filename = models.CharField(max_length=200, blank=True, help_text="The download's name.")
    # Relative to settings.EXPORT_ROOT; random. Never shown on a page or in a URL.
    path = models.CharField(max_length=100, blank=True, editable=False)
    size = models.PositiveBigIntegerField(null=True, blank=True, help_text="Bytes.")
    rows = models.PositiveIntegerField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)

    # The site codes the creator could see when the file was made: the file holds those
    # sites' rows, so it is refused once the creator may no longer see all of them.
    scope_sites = models.JSONField(default=list, blank=True)
    # A participant whose rows the job may hold had data erased while it ran
    # (``exports.export_files_erased_for``): the job does not keep its file.
    erased_meanwhile = models.BooleanField(default=False, editable=False)

    class Meta:
        ordering = ("-created_at", "-id")
        verbose_name = "dataset export job"
        indexes = [
            models.Index(fields=("created_by", "study", "created_at"), name="export_job_owner"),
            models.Index(fields=("status", "expires_at"), name="export_job_status"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(progress__lte=100), name="export_job_progress")
        ]

    def __str__(self) -> str:
        return f"Export {self.pk} of {self.study}: {self.get_status_display()}"


class DatasetLinePlan(models.Model):
    """One way of writing a study's CSV lines (``surveys.datasets.linecache``): the dataset's
    columns and options, the study's design and the code that writes them, as one key. Its
    lines are reused while the key holds; a plan unused for a while is deleted with them."""

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField()
    used_at = models.DateTimeField()
    # How the last export of this plan asked for it (its de-identified options, and the sites
    # its user could see; ``surveys.exports.export_lines_warm`` builds the same scope again to
    # keep the lines current between exports). Empty: not kept current.
    recipe = models.JSONField(default=dict, blank=True)
    warmed_at = models.DateTimeField(null=True, blank=True)
    header = models.TextField(blank=True, default="")  # the CSV's header line, once written

    class Meta:
        indexes = [models.Index(fields=("used_at",), name="line_plan_used")]

    def __str__(self) -> str:
        return f"CSV line plan {self.key[:12]} of {self.study}"


class DatasetLine(models.Model):
    """A participant's CSV lines under one plan (their one wide line, or their long rows), and
    the key of the data they were written from: used only while the participant's data still
    gives that key. De-identified exports only; deleted when identifiers are erased."""

    plan = models.ForeignKey(DatasetLinePlan, on_delete=models.CASCADE, related_name="lines")
    participant = models.ForeignKey(Participant, on_delete=models.CASCADE, related_name="+")
    source_key = models.CharField(max_length=32)
    sort_key = models.CharField(max_length=64)  # the pid: the dataset's order
    lines = models.TextField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=("plan", "participant"), name="dataset_line_once")
        ]
        indexes = [models.Index(fields=("plan", "sort_key"), name="dataset_line_order")]

    def __str__(self) -> str:
        # Named in the admin's list of what a participant's or a study's deletion removes: the
        # study ID, never the database id or a contact detail.
        return f"CSV lines of {self.participant.code}"

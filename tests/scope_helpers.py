"""Helpers of the scope matrix (tests/test_scope_matrix.py): a world of two sites and a second
study full of greppable identifiers, walks over every admin and API URL, a whole-database
snapshot to prove that a refused request changed nothing, and an HTML form reader."""

import re
import secrets
from dataclasses import dataclass, field
from datetime import timedelta
from html.parser import HTMLParser

from django.apps import apps
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.urls import URLPattern, URLResolver
from django.utils import timezone

from recovery.services import study_create_from_template
from surveys import selectors
from surveys.access import participant_pin_set
from surveys.audit import audit_log
from surveys.consent import ConsentInput, econsent_give
from surveys.exports import ExportSpec, export_root
from surveys.links import participant_link_create
from surveys.models import (
    Assignment,
    AuditEvent,
    Consent,
    ContactAttempt,
    DatasetExportJob,
    DiaryEntry,
    Item,
    Message,
    Participant,
    ParticipantLink,
    ParticipantStatusChange,
    Response,
    SafetyAlert,
    Site,
    StaffRole,
    Study,
)
from surveys.services import (
    contact_attempt_log,
    participant_enrol,
    participant_status_change,
    staff_role_assign,
)
from surveys.tokens import SCOPES, staff_token_create
from surveys.two_factor import two_factor_start
from tests.factories import ParticipantFactory, UserFactory

ROLE = StaffRole.Role

# --- The world ---------------------------------------------------------------------------------


@dataclass
class Person:
    """One participant and every greppable value that belongs to them."""

    participant: Participant
    tag: str  # A1, A2 (site A), B1, B2 (site B), F1 (the faraway study)
    identifiers: list[str]  # names, e-mail, phone, contacts, notes: never for researchers
    phone: str
    texts: list[str]  # de-identified but unique: free-text reasons
    token: str  # their personal link
    m1: Assignment  # open and overdue: on the call list
    baseline: Assignment  # completed, with a submitted response
    response: Response
    consent: Consent
    attempt: ContactAttempt
    alert: SafetyAlert
    diary: DiaryEntry
    status_change: ParticipantStatusChange
    audit: AuditEvent

    @property
    def code(self) -> str:
        return self.participant.code

    @property
    def pid(self) -> str:
        """Their ID in the study's de-identified files (the dataset's pid)."""
        from surveys.datasets.pid import export_pid

        return export_pid(
            self.participant.study, participant_id=self.participant.pk, code=self.code
        )

    def objects(self) -> list:
        """Every row that belongs to this participant and has (or shows on) an admin page."""
        return [
            self.participant,
            *self.participant.assignments.all(),
            self.response,
            *Message.objects.filter(assignment__participant=self.participant),
            self.consent,
            self.attempt,
            self.alert,
            self.diary,
            self.status_change,
            self.audit,
            *ParticipantLink.objects.filter(participant=self.participant),
        ]


@dataclass
class World:
    study: Study
    faraway: Study  # a second study: nobody of ``study`` sees anything of it
    site_a: Site
    site_b: Site
    site_f: Site
    pi: object
    coordinator_a: object
    coordinator_b: object
    researcher: object
    pi_faraway: object
    superuser: object
    people: dict[str, Person]
    tokens: dict[str, str] = field(default_factory=dict)  # username -> API key

    def at(self, *tags_or_prefixes: str) -> list[Person]:
        return [p for tag, p in self.people.items() if tag.startswith(tags_or_prefixes)]

    def identifiers(self, *prefixes: str) -> list[str]:
        return [value for person in self.at(*prefixes) for value in person.identifiers]

    def markers(self, *prefixes: str) -> list[str]:
        """Text that only a page showing these participants could contain."""
        out = []
        for person in self.at(*prefixes):
            out += [person.code, person.pid, *person.identifiers, *person.texts]
        if "A" in prefixes:
            out.append(self.site_a.name)
        if "B" in prefixes:
            out.append(self.site_b.name)
        if "F" in prefixes:
            out += [self.faraway.name, self.site_f.name]
        return out


TODAY_MINUS = 35  # days since enrolment: baseline closed (completed), 1 month open and overdue

PEOPLE = {
    # tag: (site key, first name, last name, e-mail, phone, e-consent)
    "A1": ("a", "Aurelio", "Quimby", "+1 212 555 0101", False),
    "A2": ("a", "Ambrosine", "Fairweather", "+1 212 555 0102", True),
    "B1": ("b", "Zebulon", "Thistlewood", "+44 20 7946 0999", False),
    "B2": ("b", "Bathsheba", "Ravenscroft", "+44 20 7946 0998", True),
    "F1": ("f", "Faustino", "Pemberton", "+33 1 70 36 39 77", False),
}


def _sponsor_item(study: Study) -> Item:
    """An identifying question in the baseline survey (its answer is an identifier)."""
    baseline = study.waves.get(slug="baseline")
    version = baseline.instruments.get().versions.get()
    return Item.objects.create(
        version=version,
        position=999,
        variable="sponsor_name",
        kind="text",
        label={"en": "Your sponsor's first name"},
        identifier=True,
    )


def _person(tag: str, site: Site, coordinator, now) -> Person:
    _, first, last, phone, electronic = PEOPLE[tag]
    first, last = f"{first}-{tag}-Firstname", f"{last}-{tag}-Lastname"
    email = f"{tag.lower()}-only@example.org"
    contact = {
        "first_name": first,
        "last_name": last,
        "email": email,
        "phone": phone,
        "alternative_contacts": f"Altcontact-{tag}-Sister-Henrietta",
        "locator_notes": f"Locatornote-{tag}-Under-The-Bridge",
    }
    enrolled_on = timezone.localdate() - timedelta(days=TODAY_MINUS)
    consent = (
        ConsentInput(method=Consent.Method.ELECTRONIC)
        if electronic
        else ConsentInput(
            method=Consent.Method.WRITTEN, consented_on=enrolled_on, obtained_by=coordinator
        )
    )
    # Codes of their own (not NYC-0001, which the site form's help text shows as an example).
    code = f"{site.code}-09{tag[1]}{'ABF'.index(tag[0])}"
    participant = participant_enrol(
        participant=ParticipantFactory.build(
            site=site, study=site.study, code=code, enrolled_on=enrolled_on, timezone=site.timezone
        ),
        contact=contact,
        consent=consent,
        enrolled_by=coordinator,
    )
    identifiers = [*contact.values()]
    if electronic:
        typed = f"Typedname-{tag}-Econsent"
        econsent_give(participant=participant, typed_name=typed, agreed=True, language="en")
        identifiers.append(typed)
    consent_row = participant.consents.get()
    baseline = participant.assignments.get(wave__slug="baseline")
    m1 = participant.assignments.get(wave__slug="m1")
    version = baseline.wave.instruments.get().versions.get()
    sponsor = f"Sponsoranswer-{tag}-Marta"
    response = Response.objects.create(
        assignment=baseline,
        instrument=version.instrument,
        instrument_version=version,
        answers={"sponsor_name": sponsor},
        status=Response.Status.SUBMITTED,
        started_at=now - timedelta(days=TODAY_MINUS - 1),
        submitted_at=now - timedelta(days=TODAY_MINUS - 1),
    )
    Assignment.objects.filter(pk=baseline.pk).update(
        status=Assignment.Status.COMPLETED, completed_at=response.submitted_at
    )
    Assignment.objects.filter(pk=m1.pk).update(status=Assignment.Status.OPEN)
    note = f"Attemptnote-{tag}-Voicemail-Full"
    attempt = contact_attempt_log(
        participant=participant, method="call", outcome="no_answer", by=coordinator, note=note,
        assignment=m1,
    )  # fmt: skip
    reason = f"Statusreason-{tag}-Unreachable"
    participant_status_change(
        participant=participant, status="lost", reason=reason, changed_by=coordinator
    )
    participant_status_change(
        participant=participant, status="active", reason=f"{reason}-Back", changed_by=coordinator
    )
    alert_note = f"Alertnote-{tag}-Followed-Up"
    alert = SafetyAlert.objects.create(
        study=participant.study,
        participant=participant,
        assignment=baseline,
        variable="craving_now",
        question="How strong is your craving now?",
        answer="10",
        created_at=now,
        follow_up_note=alert_note,
    )
    diary = DiaryEntry.objects.create(
        participant=participant, group="1", format="inperson", occurred_on=enrolled_on
    )
    audit = audit_log(
        action=AuditEvent.Action.RESPONSE_VIEW, user=coordinator, participant=participant,
        obj=response, details={"instrument": response.instrument.slug},
    )  # fmt: skip
    _, token = participant_link_create(participant=participant)
    participant.refresh_from_db()
    return Person(
        participant=participant,
        tag=tag,
        identifiers=[*identifiers, note, alert_note, sponsor],
        phone=phone,
        texts=[reason],
        token=token,
        m1=Assignment.objects.get(pk=m1.pk),
        baseline=Assignment.objects.get(pk=baseline.pk),
        response=response,
        consent=consent_row,
        attempt=attempt,
        alert=alert,
        diary=diary,
        status_change=participant.status_changes.first(),
        audit=audit,
    )


def _export_job(user, study: Study, now) -> DatasetExportJob:
    """A finished background export of ``user``'s, with a file (a header only: the matrix
    checks who may open it, the export tests check what is in it)."""
    name = f"{secrets.token_urlsafe(32)}.csv"
    content = b"pid,site,wave\r\n"
    (export_root() / name).write_bytes(content)
    return DatasetExportJob.objects.create(
        study=study, created_by=user, created_at=now, spec=ExportSpec().to_dict(),
        status=DatasetExportJob.Status.DONE, progress=100, filename=f"{study.slug}_long.csv",
        path=name, size=len(content), rows=0, started_at=now, finished_at=now,
        expires_at=now + timedelta(hours=24),
    )  # fmt: skip


def _analysis_run(user, study: Study, now):
    """A finished analysis run of ``user``'s over every site they see (no results: the matrix
    checks who may open it, the analysis tests check what is in it)."""
    from recovery.models import AnalysisRun

    sites = sorted(
        selectors.sites_for_user(user=user).filter(study=study).values_list("code", flat=True)
    )
    return AnalysisRun.objects.create(
        study=study, created_by=user, created_at=now,
        parameters={"analyses": ["descriptives"]}, status=AnalysisRun.Status.DONE,
        progress=100, scope_sites=sites, participants=0, rows=0, started_at=now,
        finished_at=now, results={"sections": []},
    )  # fmt: skip


def world_build() -> World:
    """Two sites of the template study (NYC = A, LDN = B) and a faraway study, each participant
    with everything that has an admin page; staff of every role, each with an API key."""
    now = timezone.now()
    study = study_create_from_template(
        slug="trial",
        name="Trial study",
        sites=[
            ("NYC", "New York site", "America/New_York"),
            ("LDN", "London site", "Europe/London"),
        ],
    )
    faraway = study_create_from_template(
        slug="faraway", name="Faraway study", sites=[("FAR", "Faraway site", "Asia/Tokyo")]
    )
    site_a, site_b = study.sites.get(code="NYC"), study.sites.get(code="LDN")
    site_f = faraway.sites.get()

    def staff(username, study, role, sites=()):
        user = UserFactory(username=username)
        staff_role_assign(user=user, study=study, role=role, sites=sites)
        user.refresh_from_db()
        return user

    pi = staff("pi-trial", study, ROLE.PRINCIPAL_INVESTIGATOR)
    coordinator_a = staff("coordinator-nyc", study, ROLE.COORDINATOR, [site_a])
    coordinator_b = staff("coordinator-ldn", study, ROLE.COORDINATOR, [site_b])
    researcher = staff("researcher-trial", study, ROLE.RESEARCHER)
    pi_faraway = staff("pi-faraway", faraway, ROLE.PRINCIPAL_INVESTIGATOR)
    superuser = get_user_model().objects.create_superuser(
        "root", "root@example.net", "a-long-test-password-123"
    )
    for each in (study, faraway):
        _sponsor_item(each)
    sites = {"a": (site_a, coordinator_a), "b": (site_b, coordinator_b), "f": (site_f, pi_faraway)}
    people = {tag: _person(tag, *sites[spec[0]], now) for tag, spec in PEOPLE.items()}
    # A PIN on a participant of each site, so that "Remove PIN" has something to remove.
    for tag in ("A2", "B1", "F1"):
        participant_pin_set(participant=people[tag].participant, pin="4321", repeat="4321")
        people[tag].participant.refresh_from_db()
    world = World(
        study=study, faraway=faraway, site_a=site_a, site_b=site_b, site_f=site_f, pi=pi,
        coordinator_a=coordinator_a, coordinator_b=coordinator_b, researcher=researcher,
        pi_faraway=pi_faraway, superuser=superuser, people=people,
    )  # fmt: skip
    for user in (pi, coordinator_a, coordinator_b, researcher, pi_faraway):
        world.tokens[user.username] = staff_token_create(
            user=user, name=f"{user.username} R", scopes=SCOPES
        )[1]
        _export_job(user, faraway if user is pi_faraway else study, now)
        _analysis_run(user, faraway if user is pi_faraway else study, now)
        two_factor_start(user=user)  # being set up: each one's own row, not yet in force
    return world


def staff_of(world: World, tag: str):
    """The staff member whose own row (StaffRole, API token, user) stands for a site."""
    return {"A": world.coordinator_a, "B": world.coordinator_b, "F": world.pi_faraway}[tag]


# --- Finding text in pages ----------------------------------------------------------------------


def digits(value: str) -> str:
    return re.sub(r"\D", "", value)


def found(body: str, markers, *, case_insensitive: bool = False) -> list[str]:
    """The markers present in a page (phones also as bare digits, as a page may reformat)."""
    haystack = body.lower() if case_insensitive else body
    bare = digits(body)
    hits = []
    for marker in markers:
        needle = marker.lower() if case_insensitive else marker
        if needle in haystack:
            hits.append(marker)
        elif marker.startswith("+") and len(digits(marker)) >= 9 and digits(marker) in bare:
            hits.append(f"{marker} (as digits)")
    return hits


def body_of(response) -> str:
    if getattr(response, "streaming", False):
        return b"".join(response.streaming_content).decode("utf-8", "replace")
    return response.content.decode("utf-8", "replace")


# --- A whole-database snapshot ------------------------------------------------------------------

# Columns that a look (not a change) may move: last-used stamps.
VOLATILE = {("participantlink", "last_used_at"), ("staffapitoken", "last_used_at")}


def db_snapshot() -> dict[str, list[tuple]]:
    """Every row of every engine table (and the auth tables), for before/after comparisons.
    The audit log is left out: looking is audited and looking is not changing."""
    snapshot = {}
    models = [
        *apps.get_app_config("surveys").get_models(include_auto_created=True),
        *apps.get_app_config("auth").get_models(include_auto_created=True),
    ]
    for model in models:
        if model is AuditEvent:
            continue
        names = [
            f.attname
            for f in model._meta.concrete_fields
            if (model._meta.model_name, f.attname) not in VOLATILE and f.attname != "last_login"
        ]
        snapshot[model._meta.label] = list(model.objects.order_by("pk").values_list(*names))
    return snapshot


def snapshot_diff(before: dict, after: dict) -> list[str]:
    changes = []
    for label, rows in before.items():
        if rows != after[label]:
            old, new = set(map(repr, rows)), set(map(repr, after[label]))
            changes.append(f"{label}: -{sorted(old - new)[:3]} +{sorted(new - old)[:3]}")
    return changes


# --- Reading a form ---------------------------------------------------------------------------


class _FormReader(HTMLParser):
    """The values a browser would send for the first form with a given id."""

    def __init__(self, form_id: str):
        super().__init__(convert_charrefs=True)
        self.form_id = form_id
        self.inside = False
        self.data: list[tuple[str, str]] = []
        self._select: str | None = None
        self._textarea: str | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form" and attrs.get("id") == self.form_id:
            self.inside = True
        if not self.inside:
            return
        name = attrs.get("name")
        if tag == "input" and name:
            kind = attrs.get("type", "text")
            if kind in ("submit", "button", "file", "image", "reset"):
                return
            if kind in ("checkbox", "radio") and "checked" not in attrs:
                return
            self.data.append((name, attrs.get("value", "on" if kind == "checkbox" else "")))
        elif tag == "select" and name:
            self._select = name
        elif tag == "option" and self._select and "selected" in attrs:
            self.data.append((self._select, attrs.get("value", "")))
        elif tag == "textarea" and name:
            self._textarea, self._text = name, []

    def handle_data(self, data):
        if self._textarea:
            self._text.append(data)

    def handle_endtag(self, tag):
        if tag == "form" and self.inside:
            self.inside = False
        elif tag == "select":
            self._select = None
        elif tag == "textarea" and self._textarea:
            text = "".join(self._text)
            self.data.append((self._textarea, text[1:] if text.startswith("\n") else text))
            self._textarea = None


class _OptionReader(HTMLParser):
    """Every option value of every select of the first form with a given id."""

    def __init__(self, form_id: str):
        super().__init__(convert_charrefs=True)
        self.form_id = form_id
        self.inside = False
        self.select: str | None = None
        self.options: dict[str, list[str]] = {}

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form" and attrs.get("id") == self.form_id:
            self.inside = True
        elif self.inside and tag == "select" and attrs.get("name"):
            self.select = attrs["name"]
            self.options.setdefault(self.select, [])
        elif self.inside and tag == "option" and self.select:
            self.options[self.select].append(attrs.get("value", ""))

    def handle_endtag(self, tag):
        if tag == "form":
            self.inside = False
        elif tag == "select":
            self.select = None


def select_options(html: str, form_id: str) -> dict[str, list[str]]:
    reader = _OptionReader(form_id)
    reader.feed(html)
    return reader.options


def form_data(html: str, form_id: str) -> dict[str, list[str]]:
    reader = _FormReader(form_id)
    reader.feed(html)
    out: dict[str, list[str]] = {}
    for name, value in reader.data:
        out.setdefault(name, []).append(value)
    return out


# --- Walking the URL configuration -------------------------------------------------------------

PARAM = re.compile(r"<(?:(?P<converter>[^>:]+):)?(?P<name>[^>]+)>|\(\?P<(?P<regex>[^>]+)>")


@dataclass(frozen=True)
class Route:
    route: str  # the whole pattern, e.g. "admin/surveys/consent/<int:consent_id>/print/"
    name: str | None  # the URL name (namespaced for the API)
    params: tuple[str, ...]
    model_admin: admin.ModelAdmin | None = None
    view: object = None

    def url(self, **values) -> str:
        def one(match):
            return str(values[match.group(1)])

        text = re.sub(r"\(\?P<(\w+)>[^)]*\)", one, self.route)
        text = re.sub(r"<(?:[^>:]+:)?(\w+)>", one, text)
        return "/" + text.replace("^", "").replace("$", "")


def _walk(patterns, prefix: str, namespace: str, model_admin, out: list[Route]) -> None:
    for pattern in patterns:
        text = str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            ns = f"{namespace}{pattern.namespace}:" if pattern.namespace else namespace
            _walk(pattern.url_patterns, prefix + text, ns, model_admin, out)
        elif isinstance(pattern, URLPattern):
            params = tuple(
                m.group("name") or m.group("regex") for m in PARAM.finditer(text) if m.group(0)
            )
            name = f"{namespace}{pattern.name}" if pattern.name else None
            out.append(Route(prefix + text, name, params, model_admin, pattern.callback))


def admin_routes() -> list[Route]:
    """Every URL of the admin site, each ModelAdmin's get_urls() included, with its owner."""
    out: list[Route] = []
    prefixes = set()
    for model, model_admin in admin.site._registry.items():
        prefix = f"{model._meta.app_label}/{model._meta.model_name}/"
        prefixes.add(prefix)
        _walk(model_admin.get_urls(), f"admin/{prefix}", "", model_admin, out)
    site_level = [p for p in admin.site.get_urls() if str(p.pattern) not in prefixes]
    _walk(site_level, "admin/", "", None, out)
    return out


def routes_of(patterns, prefix: str) -> list[Route]:
    out: list[Route] = []
    _walk(patterns, prefix, "", None, out)
    return out

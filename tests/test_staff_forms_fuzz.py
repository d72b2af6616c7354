"""Hypothesis fuzz of the staff side (issue 9: "a fuzz of every input finds no 5xx"): every
admin URL, walked mechanically as the scope matrix walks it (``admin_routes()``: a page added
later is fuzzed without a new test), plus the two-factor page — model add, change and delete
forms with their inlines, changelists and their actions, and the custom pages (export,
analyses, the CSV import and its confirmation, call list, send-now, retention, the data
dictionary's upload and download, previews, timelines, exports' and runs' pages).

Signed in as a principal investigator, a site coordinator and a superuser, on the scope
matrix's world (two sites, a second study). Each form is read from the page as that user sees
it and posted as a browser would, with some fields replaced by junk (NUL bytes, '1e309',
'NaN', huge numbers, other scripts, very long text, lists), by another select's choice or any
row's id, dropped, or made up; uploads are junk files, most of them CSV files of the right
shape with junk cells. Query strings get junk filters, orderings, searches, dates and pages.

Every answer must be below 500 (a page, a redirect, a 400/403/404/405), the user stays signed
in, and a refused form (a 4xx, or the page again with its errors) changes nothing in the
database. Each example runs in a savepoint rolled back at its end, so that every example starts
from the same world. ``STAFF_FUZZ_EXAMPLES`` sets the examples per test (default 75)."""

import csv
import io
import os
import re
from dataclasses import dataclass, field
from datetime import timedelta
from html import unescape
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlencode, urljoin, urlsplit

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.contenttypes.models import ContentType
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from django.test import Client
from django.utils import timezone
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from recovery.models import AnalysisRun
from surveys.dictionary import COLUMNS as DICTIONARY_COLUMNS
from surveys.models import DatasetExportJob, DiaryEntry, InstrumentVersion, Study
from surveys.participant_import import COLUMN_NAMES as IMPORT_COLUMNS
from tests.scope_helpers import (
    Route,
    World,
    admin_routes,
    body_of,
    db_snapshot,
    snapshot_diff,
    world_build,
)

pytestmark = pytest.mark.slow

EXAMPLES = int(os.environ.get("STAFF_FUZZ_EXAMPLES", "75"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)
ROLES = ("pi", "coordinator", "superuser")
LOGIN = "/admin/login/"
# Admin URLs not fuzzed, and why.
SKIP = {"logout": "ends the session under test"}
TWO_FACTOR = Route("admin/two-factor/", "two-factor-setup", ())
STANDARD_PAGES = ("_changelist", "_add", "_change", "_delete", "_history")
# Parameters that name an object, when the name alone does not say which model.
PARAM_MODELS = {
    "version_id": InstrumentVersion,
    "entry_id": DiaryEntry,
    "study_id": Study,
    "job_id": DatasetExportJob,
    "run_id": AnalysisRun,
}
REDCAP = (Path(__file__).parent / "surveys" / "fixtures" / "redcap_dictionary.csv").read_bytes()

# --- What is sent ------------------------------------------------------------------------------

ODD = [
    "",
    " ",
    "0",
    "-1",
    "1e309",
    "-1e309",
    "NaN",
    "inf",
    "0.5",
    "1,5",
    "\x00",
    "a\x00b",
    "9" * 19,
    "9" * 40,
    "-9223372036854775809",
    "１２",
    "٣",
    "today",
    "2024-02-30",
    "99999-01-01",
    "0000-00-00",
    "31/12/2024",
    "2024-01-01 25:61:61",
    "'; --",
    "<script>x</script>",
    "../../etc/passwd",
    "on",
    "yes",
    "true",
    "None",
    "null",
    "[]",
    "{}",
    "\u202eevil",
    "x" * 5000,
    "ä" * 3000,
]
TEXT = st.one_of(
    st.sampled_from(ODD),
    st.text(max_size=40),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=300),
    st.integers().map(str),
    st.floats().map(str),
)
# Field and parameter names a page does not have but some page reads.
NAMES = [
    "action",
    "_selected_action",
    "select_across",
    "index",
    "post",
    "_save",
    "_continue",
    "_addanother",
    "_saveasnew",
    "payload",
    "file",
    "study",
    "site",
    "code",
    "language",
    "subgroup",
    "from",
    "q",
    "o",
    "p",
    "e",
    "all",
    "_popup",
    "_to_field",
    "_changelist_filters",
    "next",
    "term",
    "app_label",
    "model_name",
    "field_name",
    "csrfmiddlewaretoken",
]
# Query strings that no form would make.
RAW_QUERIES = ["%ff%fe", "%00", "a=%", "&&==", "=x", "a[]=1", "q=%ED%A0%80", "o=-", "p=0x10"]
# PostgreSQL refuses a NUL in text (SQLite does not): the likeliest poison.
POISON = ["\x00", "\x00", "\x00", "\x00x", "e309", ".5", "'", " ", "ä" * 8, "9" * 20, "\u202e"]
FILENAMES = ["data.csv", "x" * 300 + ".csv", "données.txt", "no-extension", 'a b;c".csv']


@dataclass
class Form:
    """One form of a page: what a browser sends as it is, and what each field could hold."""

    action: str
    method: str
    data: dict[str, list[str]] = field(default_factory=dict)
    choices: dict[str, list[str]] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    names: set[str] = field(default_factory=set)
    multiple: set[str] = field(default_factory=set)  # checkboxes, multiple selects


class _Forms(HTMLParser):
    """Every form of a page (``scope_helpers.form_data`` reads one, by its id)."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.forms: list[Form] = []
        self.form: Form | None = None
        self.select: str | None = None
        self.textarea: str | None = None
        self.text: list[str] = []
        self.submitted = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form":
            self.form = Form(attrs.get("action") or "", (attrs.get("method") or "get").lower())
            self.forms.append(self.form)
            self.submitted = False
            return
        name = attrs.get("name")
        form = self.form
        if form is None:
            return
        if tag == "option" and self.select:
            value = attrs.get("value", "")
            form.choices.setdefault(self.select, []).append(value)
            if "selected" in attrs:
                form.data.setdefault(self.select, []).append(value)
        if not name:
            return
        form.names.add(name)
        kind = attrs.get("type", "text" if tag == "input" else "submit")
        if tag == "input" and kind == "file":
            form.files.append(name)
        elif tag in ("input", "button") and kind in ("submit", "image"):
            # The first button is the one Enter presses.
            if not self.submitted:
                form.data.setdefault(name, []).append(attrs.get("value", ""))
                self.submitted = True
            form.choices.setdefault(name, []).append(attrs.get("value", ""))
        elif tag == "input" and kind in ("checkbox", "radio"):
            if kind == "checkbox":
                form.multiple.add(name)
            value = attrs.get("value", "on")
            form.choices.setdefault(name, []).append(value)
            if "checked" in attrs:
                form.data.setdefault(name, []).append(value)
        elif tag == "input" and kind not in ("reset", "button"):
            form.data.setdefault(name, []).append(attrs.get("value", ""))
        elif tag == "select":
            self.select = name
            if "multiple" in attrs:
                form.multiple.add(name)
        elif tag == "textarea":
            self.textarea, self.text = name, []

    def handle_data(self, data):
        if self.textarea:
            self.text.append(data)

    def handle_endtag(self, tag):
        if tag == "form":
            self.form = None
        elif tag == "select":
            self.select = None
        elif tag == "textarea" and self.textarea and self.form is not None:
            text = "".join(self.text)
            value = text[1:] if text.startswith("\n") else text
            self.form.data.setdefault(self.textarea, []).append(value)
            self.textarea = None


@dataclass
class Page:
    forms: list[Form]
    queries: dict[str, list[str]]  # the page's own links' and GET forms' parameters


def page_read(url: str, html: str) -> Page:
    reader = _Forms()
    reader.feed(html)
    path = urlsplit(url).path
    queries: dict[str, list[str]] = {}
    for href in re.findall(r'href="([^"#]*\?[^"#]*)"', html):
        target = urlsplit(unescape(href))
        if target.path in ("", path):
            for key, value in parse_qsl(target.query, keep_blank_values=True):
                queries.setdefault(key, []).append(value)
    forms = []
    for form in reader.forms:
        action = urljoin(url, form.action) if form.action else url
        if urlsplit(action).path.endswith("/logout/"):
            continue  # ends the session under test
        form.action = action
        if form.method == "get":
            for name in form.names | set(form.choices):
                queries.setdefault(name, []).extend(form.choices.get(name, []))
        else:
            forms.append(form)
    return Page(forms, queries)


# --- The world and who is signed in ------------------------------------------------------------


class Staff:
    """The world, a signed-in client of each role, the ids of every row, and each page's forms
    (read once: every example starts from the same database)."""

    def __init__(self, world: World):
        self.world = world
        self.users = {
            "pi": world.pi,
            "coordinator": world.coordinator_a,
            "superuser": world.superuser,
        }
        self.clients = {}
        for role, user in self.users.items():
            client = Client()
            client.force_login(user)
            self.clients[role] = client
        self.routes = [r for r in admin_routes() if r.name not in SKIP] + [TWO_FACTOR]
        standard = [r for r in self.routes if r.name and r.name.endswith(STANDARD_PAGES)]
        self.changelists = [r for r in standard if r.name.endswith("_changelist")]
        self.model_pages = [r for r in standard if r not in self.changelists]
        self.custom = [r for r in self.routes if r not in standard]
        self.ids = {
            model: [str(pk) for pk in model.objects.order_by("pk").values_list("pk", flat=True)]
            for model in {*admin.site._registry, *PARAM_MODELS.values()}
        }
        self.all_ids = sorted({pk for pks in self.ids.values() for pk in pks}, key=int)
        self.content_types = [
            str(ContentType.objects.get_for_model(model).pk) for model in admin.site._registry
        ]
        self.pages: dict[tuple[str, str], Page] = {}
        self.samples = _samples(world)

    def page(self, role: str, url: str, *, opened: bool = False) -> Page:
        """The page's forms and links, read once; ``opened``: GET it again first, as a browser
        does before it posts (opening a page may write: the two-factor page makes its secret)."""
        key = (role, url)
        if key not in self.pages or opened:
            response = self.send(role, "get", url)
            self.pages[key] = page_read(url, response.body if response.status_code == 200 else "")
        return self.pages[key]

    def send(self, role: str, method: str, url: str, **kwargs):
        """The response with its body read (a streamed file is read to its end: an error while
        streaming is a server error too); in a savepoint, as the scope matrix does, so that a
        failed request leaves the test's transaction usable on PostgreSQL."""
        with transaction.atomic():
            response = getattr(self.clients[role], method)(url, **kwargs)
            response.body = body_of(response)
        return response


@pytest.fixture
def staff(db, settings) -> Staff:
    # Every example's changes are rolled back, the session's last request too: a long run must
    # not end the session for being idle.
    settings.STAFF_SESSION_IDLE_MINUTES = 24 * 60
    return Staff(world_build())


def _model_of(route: Route, param: str):
    if param == "object_id" and route.model_admin is not None:
        return route.model_admin.model
    if param in PARAM_MODELS:
        return PARAM_MODELS[param]
    name = param.removesuffix("_id").replace("_", "")
    return next((m for m in admin.site._registry if m._meta.model_name == name), None)


JUNK_IDS = ["0", "999999999999999999", "9" * 25, "-1", "abc", "1.5", "1e309", "%00", "٣", "_"]


def url_of(data, staff: Staff, route: Route) -> str:
    """The route with each parameter a row's id (of any site or study), or junk."""
    values = {}
    for param in route.params:
        if param == "app_label":
            labels = route.route.split("(?P<app_label>")[1].split(")")[0].split("|")
            values[param] = data.draw(st.sampled_from(labels), label=param)
        elif param == "url":
            values[param] = data.draw(
                st.one_of(
                    st.sampled_from(["no-such-page/", "surveys/nosuch/", "surveys/study/x/y/z/"]),
                    TEXT.map(lambda text: quote(text, safe="/")),
                ),
                label=param,
            )
        else:
            model = _model_of(route, param)
            if param == "content_type_id":
                real = staff.content_types
            else:
                real = (staff.ids[model] if model is not None else []) or staff.all_ids
            # Mostly a real row, so that most examples reach the page itself.
            if data.draw(st.integers(0, 3), label=f"{param} is a row?"):
                values[param] = data.draw(st.sampled_from(real), label=param)
            else:
                junk = st.one_of(st.sampled_from(JUNK_IDS), TEXT.map(lambda t: quote(t, safe="")))
                values[param] = data.draw(junk, label=param)
    return route.url(**values)


def target(data, staff: Staff) -> tuple[str, str]:
    role = data.draw(st.sampled_from(ROLES), label="role")
    # The custom pages, the changelists and the other model pages (four of each model) alike.
    families = [staff.custom, staff.changelists, staff.model_pages]
    route = data.draw(st.one_of(*map(st.sampled_from, families)), label="route")
    event(f"{role} {route.name}")
    return role, url_of(data, staff, route)


def poisoned(values: list[str]):
    """One of the values with junk stuck to it: a value that passes a first look."""
    return st.tuples(st.sampled_from(values), st.sampled_from(POISON), st.booleans()).map(
        lambda t: t[1] + t[0] if t[2] else t[0] + t[1]
    )


def value(staff: Staff, choices: list[str]):
    """Junk, a list of junk, any row's id, or one of the field's own values (its choices, what
    the page filled in): as it is, several of them, or with junk stuck to it."""
    options = [TEXT, st.lists(TEXT, min_size=1, max_size=3), st.sampled_from(staff.all_ids)]
    if choices:
        own = st.sampled_from(choices)
        options += [own, st.lists(own, max_size=4), poisoned(choices)]
    return st.one_of(*options)


def mutated(data, staff: Staff, form: Form) -> dict[str, list[str]]:
    """The form as the page fills it, or with every choice made (an action and its rows, a
    site, a button), then with a few fields junk, dropped or made up."""
    sent = {name: list(values) for name, values in form.data.items()}
    if form.choices and data.draw(st.booleans(), label="choose?"):
        for name, choices in sorted(form.choices.items()):
            if name in form.multiple:
                sent[name] = data.draw(st.lists(st.sampled_from(choices), max_size=4), label=name)
            else:
                sent[name] = [data.draw(st.sampled_from(choices), label=name)]
    own = sorted(form.names | set(form.choices))
    names = st.one_of(
        *([st.sampled_from(own)] if own else []),
        st.sampled_from(NAMES),
        st.text(min_size=1, max_size=12),
    )
    for _ in range(data.draw(st.integers(0, 4), label="changes")):
        name = data.draw(names, label="field")
        if data.draw(st.integers(0, 5), label="drop?") == 0:
            sent.pop(name, None)
            continue
        own = form.choices.get(name) or form.data.get(name) or []
        new = data.draw(value(staff, own), label=name)
        sent[name] = new if isinstance(new, list) else [new]
    return sent


# --- Junk files ----------------------------------------------------------------------------


def _samples(world: World) -> list[list[list[str]]]:
    """Files that are right (each file input's own and the others'), as rows of cells, for
    junk cells to go into: an import of two participants, a REDCap dictionary."""
    yesterday = (timezone.localdate() - timedelta(days=1)).isoformat()
    rows = [list(IMPORT_COLUMNS)]
    for n, (site, method) in enumerate(((world.site_a, "verbal"), (world.site_b, "electronic"))):
        row = dict.fromkeys(IMPORT_COLUMNS, "")
        row |= {"site": site.code, "email": f"fuzz-{n}@example.net", "consent_method": method}
        if method == "verbal":
            row["consent_date"] = yesterday
        rows.append([row[name] for name in IMPORT_COLUMNS])
    dictionary = list(csv.reader(io.StringIO(REDCAP.decode("utf-8"))))
    assert dictionary[0] == list(DICTIONARY_COLUMNS)
    return [rows, dictionary]


def _csv(rows: list[list[str]], delimiter: str) -> str:
    out = io.StringIO()
    csv.writer(out, delimiter=delimiter, lineterminator="\r\n").writerows(rows)
    return out.getvalue()


@st.composite
def junk_file(draw, samples: list[list[list[str]]]) -> SimpleUploadedFile:
    kind = draw(st.sampled_from(["cells", "cells", "cells", "bytes", "odd"]), label="file")
    if kind == "bytes":
        content = draw(st.binary(max_size=3000))
    elif kind == "odd":
        content = draw(
            st.sampled_from(
                [
                    b"",
                    b"\xef\xbb\xbf",
                    b"\x00" * 200,
                    b"\r\n\r\n",
                    b'"unclosed,quote\r\nsite\r\n',
                    b"site\r\n" + b"NYC\r\n" * 5000,
                    b"a," * 20000 + b"\r\n",
                    "site,email\r\nNYC,é@example.net\r\n".encode("latin-1"),
                    "site,email\r\nNYC,x@example.net\r\n".encode("utf-16"),
                ]
            )
        )
    else:
        rows = [list(row) for row in draw(st.sampled_from(samples))]
        for _ in range(draw(st.integers(1, 6), label="cells")):
            line = draw(st.integers(0, len(rows) - 1))
            cells = rows[line]
            column = draw(st.integers(0, len(cells)))  # one past the end: an extra column
            cell = draw(TEXT)
            if column == len(cells):
                cells.append(cell)
            else:
                cells[column] = cell
        if draw(st.booleans()):
            rows = rows[: draw(st.integers(1, len(rows)))]
        text = _csv(rows, draw(st.sampled_from([",", ";", "\t"])))
        encoding = draw(st.sampled_from(["utf-8", "utf-8-sig", "latin-1", "utf-16"]))
        content = text.encode(encoding, errors="replace")
    return SimpleUploadedFile(draw(st.sampled_from(FILENAMES)), content)


# --- Checks --------------------------------------------------------------------------------

REFUSAL_MARKS = ('class="errornote"', 'class="errorlist', "Nothing was imported")


def refused(response) -> bool:
    """A 4xx, or the page again saying what was wrong."""
    if 400 <= response.status_code < 500:
        return True
    return response.status_code == 200 and any(mark in response.body for mark in REFUSAL_MARKS)


def snapshot() -> dict:
    """Every row of the engine, auth and analysis tables (``db_snapshot`` and the runs)."""
    rows = db_snapshot()
    for model in apps.get_app_config("recovery").get_models():
        rows[model._meta.label] = list(model.objects.order_by("pk").values_list())
    return rows


def answered(role: str, method: str, url: str, response, sent=None) -> None:
    # What the examples reached (pytest --hypothesis-show-statistics).
    event(f"{method} {response.status_code}")
    what = f"{role}: {method} {url[:300]} {repr(sent)[:600] if sent else ''}"
    assert response.status_code < 500, f"{what} → {response.status_code}"
    location = response.headers.get("Location", "") if response.status_code in (301, 302) else ""
    assert not location.startswith(LOGIN) or url.startswith(LOGIN), f"{what}: signed out"


def post_checked(staff: Staff, role: str, url: str, sent: dict):
    """POST, rolled back afterwards; a refused form changed nothing."""
    with transaction.atomic():
        before = snapshot()
        response = staff.send(role, "post", url, data=sent)
        answered(role, "POST", url, response, sent)
        if refused(response):
            changed = snapshot_diff(before, snapshot())
            assert not changed, (
                f"{role}: POST {url} refused ({response.status_code}) changed {changed}"
            )
        transaction.set_rollback(True)
    return response


# --- The fuzz ------------------------------------------------------------------------------


@FUZZ
@given(data=st.data())
def test_no_admin_page_gets_a_server_error_from_its_query_string(staff, data):
    """Every admin page with junk filters, searches, orderings, dates, pages and ids."""
    role, url = target(data, staff)
    with transaction.atomic():
        page = staff.page(role, url)
        keys = sorted(page.queries)
        # Mostly the page's own filters with their own values, as they are or with junk stuck
        # to them: one unknown parameter alone sends a changelist back with "?e=1".
        anything = st.one_of(st.sampled_from(NAMES), st.text(min_size=1, max_size=12))
        own_only = keys and data.draw(st.integers(0, 3), label="own keys only?") > 0
        names = (
            st.sampled_from(keys)
            if own_only
            else st.one_of(st.sampled_from(keys or NAMES), anything)
        )
        pairs = []
        for _ in range(data.draw(st.integers(1, 3), label="parameters")):
            key = data.draw(names, label="key")
            own = [v for v in page.queries.get(key, []) if v] or staff.all_ids
            sent = data.draw(
                st.one_of(st.sampled_from(own), poisoned(own), value(staff, own)), label=key
            )
            pairs += [(key, one) for one in (sent if isinstance(sent, list) else [sent])]
        query = urlencode(pairs)
        if data.draw(st.integers(0, 3), label="raw?") == 0:
            query += "&" + data.draw(st.sampled_from(RAW_QUERIES))
        full = f"{url}?{query}"
        answered(role, "GET", full, staff.send(role, "get", full))
        transaction.set_rollback(True)


@FUZZ
@given(data=st.data())
def test_no_admin_form_gets_a_server_error(staff, data):
    """Every form of every admin page (add, change and delete forms, changelists' actions, the
    custom pages), posted with junk, to its action or to the page itself."""
    role, url = target(data, staff)
    with transaction.atomic():
        page = staff.page(role, url, opened=True)
        form = (
            data.draw(st.sampled_from(page.forms), label="form")
            if page.forms
            else Form(url, "post")
        )
        sent = mutated(data, staff, form)
        for name in form.files:
            sent[name] = data.draw(junk_file(staff.samples))
        to = data.draw(st.sampled_from(sorted({form.action, url})), label="to")
        post_checked(staff, role, to, sent)
        transaction.set_rollback(True)


@FUZZ
@given(data=st.data())
def test_no_admin_action_gets_a_server_error(staff, data):
    """Every changelist's actions, on rows of the page, of any site or study, or junk ids;
    with "select all", its confirmation step, and junk around."""
    role = data.draw(st.sampled_from(ROLES), label="role")
    route = data.draw(st.sampled_from(staff.changelists), label="changelist")
    event(f"{role} {route.name}")
    url = route.url()
    with transaction.atomic():
        page = staff.page(role, url, opened=True)
        form = next((f for f in page.forms if "action" in f.choices), None)
        actions = [a for a in form.choices["action"] if a] if form else []
        model = route.model_admin.model
        listed = form.choices.get("_selected_action", []) if form else []
        rows = st.sampled_from(listed + staff.ids[model] or [""])
        selected = data.draw(st.lists(rows, max_size=4), label="rows")
        if data.draw(st.integers(0, 3), label="junk row?") == 0:  # mostly rows: the action runs
            selected.append(data.draw(TEXT, label="junk row"))
        sent = {
            "action": [data.draw(st.one_of(st.sampled_from(actions or [""]), TEXT), label="act")],
            "_selected_action": selected,
            "index": [data.draw(st.one_of(st.just("0"), TEXT), label="index")],
            "select_across": [data.draw(st.sampled_from(["0", "1", "", "2", "x"]))],
        }
        if data.draw(st.booleans(), label="confirmed?"):
            sent["post"] = ["yes"]
        junk = mutated(data, staff, Form(url, "post")) if data.draw(st.booleans()) else {}
        post_checked(
            staff, role, url + data.draw(st.sampled_from(["", "?q=1", "?o=1"])), junk | sent
        )
        transaction.set_rollback(True)


def _upload_routes(staff: Staff) -> list[tuple[str, str, Form]]:
    """(role, url, form) of every page with a file input, as a PI or a superuser sees it."""
    found = []
    for route in staff.routes:
        if route.name and route.name.endswith(("_changelist", "_delete", "_history")):
            continue
        values = {}
        for param in route.params:
            model = _model_of(route, param)
            pks = staff.ids.get(model, []) if model else []
            if not pks:
                break
            values[param] = pks[0]
        else:
            url = route.url(**values)
            for role in ("pi", "superuser"):
                for form in staff.page(role, url).forms:
                    if form.files:
                        found.append((role, url, form))
    return found


@FUZZ
@given(data=st.data())
def test_no_uploaded_file_gets_a_server_error(staff, data):
    """Junk files to every page that takes one (the CSV import, the dictionary upload); a
    preview that offers to confirm is confirmed with its sealed payload, or a damaged one."""
    if not hasattr(staff, "uploads"):
        with transaction.atomic():
            staff.uploads = _upload_routes(staff)
            transaction.set_rollback(True)
        assert len(staff.uploads) >= 2, staff.uploads  # the import and the dictionary
    role, url, form = data.draw(st.sampled_from(staff.uploads), label="upload")
    role = data.draw(st.sampled_from([role, "coordinator"]), label="role")
    with transaction.atomic():
        sent = mutated(data, staff, form) if data.draw(st.booleans()) else dict(form.data)
        for name in form.files:
            sent[name] = data.draw(junk_file(staff.samples))
        response = post_checked(staff, role, form.action, sent)
        payload = re.search(r'name="payload" value="([^"]+)"', response.body)
        confirm = re.search(
            r'<form method="post" action="([^"]+)" id="import-confirm"', response.body
        )
        if payload and confirm:
            sealed = payload.group(1)
            damaged = data.draw(
                st.one_of(
                    st.just(sealed),
                    st.integers(0, len(sealed) - 1).map(lambda i: sealed[:i]),
                    st.integers(0, len(sealed) - 1).map(
                        lambda i: sealed[:i] + ("A" if sealed[i] != "A" else "B") + sealed[i + 1 :]
                    ),
                    TEXT,
                ),
                label="payload",
            )
            post_checked(staff, role, urljoin(url, confirm.group(1)), {"payload": damaged})
        transaction.set_rollback(True)

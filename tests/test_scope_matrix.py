"""The scope matrix: every admin page, admin action, custom admin page, API endpoint and
participant page, walked mechanically (a page added later is covered without a new test).

- A coordinator of one site never sees or changes anything of another site or another study.
- A principal investigator sees both sites of their study, nothing of another study.
- A researcher sees the same pages with no identifier anywhere (names, e-mails, phones,
  alternative contacts, locator notes, typed consent names, free-text notes, identifying answers),
  nothing at all of another study, and changes nothing, not even in their own study.
- A participant's session reaches only that participant's own surveys.

Every family has its positive control (the own site's object IS shown, the own row DOES change),
so that a walk which finds nothing cannot pass by accident. Each test collects every problem and
reports them together (URL, role, what leaked).
"""

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import quote

import pytest
from django.contrib import admin
from django.contrib.admin.models import LogEntry
from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from django.db.models import Q
from django.test import Client, RequestFactory
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from api import urls as api_urls
from recovery.models import AnalysisRun
from surveys import participant_urls
from surveys.models import (
    Assignment,
    ContactAttempt,
    DatasetExportJob,
    DiaryEntry,
    InstrumentVersion,
    Message,
    Participant,
    ParticipantContact,
    ReminderRule,
    Site,
    StaffApiToken,
    StaffRole,
    Study,
)
from tests.scope_helpers import (
    Route,
    World,
    admin_routes,
    body_of,
    db_snapshot,
    form_data,
    found,
    routes_of,
    select_options,
    snapshot_diff,
    world_build,
)

pytestmark = pytest.mark.slow

User = get_user_model()

# --- Where each registered model's rows belong --------------------------------------------------


@dataclass(frozen=True)
class Scope:
    """Lookups from a model to the Site, the Study and the staff user its rows belong to.
    All None: rows of nobody's data (auth groups), which only superusers manage."""

    site: str | None = None
    study: str | None = None
    user: str | None = None


SCOPE: dict[str, Scope] = {
    # Participants' data: owned by a site (and so by its study).
    "surveys.Participant": Scope(site="site", study="study"),
    "surveys.Assignment": Scope(site="participant__site", study="participant__study"),
    "surveys.Response": Scope(
        site="assignment__participant__site", study="assignment__participant__study"
    ),
    "surveys.Message": Scope(
        site="assignment__participant__site", study="assignment__participant__study"
    ),
    "surveys.Consent": Scope(site="participant__site", study="participant__study"),
    "surveys.SafetyAlert": Scope(site="participant__site", study="study"),
    "surveys.DiaryEntry": Scope(site="participant__site", study="participant__study"),
    "surveys.AuditEvent": Scope(site="participant__site", study="study"),
    "surveys.Site": Scope(site="pk", study="study"),
    "surveys.StaffRole": Scope(site="sites", study="study"),
    # The study's design: owned by a study.
    "surveys.Study": Scope(study="pk"),
    "surveys.Wave": Scope(study="study"),
    "surveys.Instrument": Scope(study="study"),
    "surveys.InstrumentVersion": Scope(study="instrument__study"),
    "surveys.Item": Scope(study="version__instrument__study"),
    "surveys.ConsentVersion": Scope(study="study"),
    "surveys.ReminderRule": Scope(study="study"),
    # A staff member's own things.
    "surveys.StaffApiToken": Scope(user="user"),
    "surveys.StaffTwoFactor": Scope(user="user"),
    # A background export: its creator's alone, within a study (not even the study's other
    # staff open it).
    "surveys.DatasetExportJob": Scope(study="study", user="created_by"),
    # An analysis run: its creator's alone, like a background export.
    "recovery.AnalysisRun": Scope(study="study", user="created_by"),
    "auth.User": Scope(user="pk"),
    "auth.Group": Scope(),
}


def _mutated_sites(obj, world):
    return {"sites": [str(world.site_a.pk), str(world.site_b.pk)]}


# What a change POST alters, per model an authorised user may change. The form is read from the
# page (as a superuser sees it), these fields are changed, and the row must then differ: for the
# viewer's own rows it must (the positive control), for another site's rows it must not.
MUTATE: dict[str, Callable] = {
    "surveys.Participant": lambda obj, world: {
        "code": f"{obj.code}-MUT",
        "contact-0-locator_notes": "Mutated locator note",
    },
    "surveys.SafetyAlert": lambda obj, world: {"follow_up_note": "Mutated follow-up"},
    "surveys.Site": lambda obj, world: {"name": f"{obj.name} MUT"},
    "surveys.Study": lambda obj, world: {"name": f"{obj.name} MUT"},
    "surveys.Wave": lambda obj, world: {"name": f"{obj.name} MUT"},
    "surveys.Instrument": lambda obj, world: {"name": f"{obj.name} MUT"},
    "surveys.ConsentVersion": lambda obj, world: {"version": "9.9"},
    "surveys.ReminderRule": lambda obj, world: {"position": "9"},
    "surveys.StaffRole": _mutated_sites,
    "auth.User": lambda obj, world: {"first_name": "Mutated"},
    "auth.Group": lambda obj, world: {"name": f"{obj.name} MUT"},
}

STANDARD_PAGES = ("_changelist", "_add", "_change", "_delete", "_history")
# Admin URLs not fetched, and why.
ADMIN_SKIP = {
    "logout": "ends the session under test (POST only; GET is 405)",
}
# Parameters that name an object, by name, when the name alone does not say which model.
PARAM_MODELS = {
    "version_id": InstrumentVersion,
    "entry_id": DiaryEntry,
    "study_slug": Study,
    "job_id": DatasetExportJob,
    "run_id": AnalysisRun,
}
# Parameters that are not ids: a value to use, or None to skip the route (and why).
PARAM_VALUES = {
    "url": "no-such-page/",
    "slug": None,  # follows an assignment_id (the instrument of its wave)
    "instrument_slug": None,  # the same
}
CAPABILITY_PARAMS = {
    "token": "a personal or signed unsubscribe link: holding it is the authorisation",
}


def model_key(model) -> str:
    return model._meta.label


def change_url(obj) -> str:
    opts = obj._meta
    return reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk])


# --- Who looks, and what is theirs ------------------------------------------------------------


@dataclass
class Viewer:
    name: str
    user: object
    own_sites: list[Site]
    foreign_sites: list[Site]
    own_studies: list[Study]
    foreign_studies: list[Study]
    own_tags: tuple[str, ...]
    foreign_tags: tuple[str, ...]
    # A researcher sees their own study de-identified: its pages are theirs, its identifiers
    # are not, and they change nothing in it.
    sees_identifiers: bool = True

    @property
    def foreign_users(self):
        return User.objects.exclude(pk=self.user.pk).order_by("pk")


def viewer_of(world: World, name: str) -> Viewer:
    """A staff member with their own sites and study, and the sites and study that are not
    theirs. The researcher's foreign data is the other study (everything of it: participants,
    responses, exports, analysis runs, audit events); their own study they see de-identified."""
    a, b, f = world.site_a, world.site_b, world.site_f
    user, own, foreign, own_tags, foreign_tags = {
        "coordinator_a": (world.coordinator_a, [a], [b, f], ("A",), ("B", "F")),
        "coordinator_b": (world.coordinator_b, [b], [a, f], ("B",), ("A", "F")),
        "pi": (world.pi, [a, b], [f], ("A", "B"), ("F",)),
        "researcher": (world.researcher, [a, b], [f], ("A", "B"), ("F",)),
    }[name]
    return Viewer(
        name, user, own, foreign, [world.study], [world.faraway], own_tags, foreign_tags,
        sees_identifiers=name != "researcher",
    )  # fmt: skip


def _in(path: str, objects) -> Q:
    return Q(**{f"{path}__in": [obj.pk for obj in objects]})


def foreign_rows(model, viewer: Viewer):
    scope = SCOPE[model_key(model)]
    if scope == Scope():
        return model.objects.order_by("pk")
    query = Q(pk__in=[])
    if scope.site:
        query |= _in(scope.site, viewer.foreign_sites)
    if scope.study:
        query |= _in(scope.study, viewer.foreign_studies)
    if scope.user:
        query |= _in(scope.user, viewer.foreign_users)
    return model.objects.filter(query).distinct().order_by("pk")


def own_rows(model, viewer: Viewer):
    scope = SCOPE[model_key(model)]
    if scope.site:
        query = _in(scope.site, viewer.own_sites)
    elif scope.study:
        query = _in(scope.study, viewer.own_studies)
    elif scope.user:
        query = _in(scope.user, [viewer.user])
    else:
        return model.objects.none()
    if scope.user:  # a staff member's own things in their study: theirs only
        query &= _in(scope.user, [viewer.user])
    return model.objects.filter(query).distinct().order_by("pk")


def picked_foreign(model, viewer: Viewer) -> list:
    """One row of each foreign site, each foreign study and two other users: the objects whose
    pages are tried."""
    scope = SCOPE[model_key(model)]
    groups = []
    if scope == Scope():
        groups.append(Q())
    if scope.site:
        groups += [_in(scope.site, [site]) for site in viewer.foreign_sites]
    if scope.study:
        groups += [_in(scope.study, [study]) for study in viewer.foreign_studies]
    if scope.user:
        groups += [_in(scope.user, [user]) for user in viewer.foreign_users[:2]]
    picked = []
    for group in groups:
        row = model.objects.filter(group).order_by("pk").first()
        if row is not None and row not in picked:
            picked.append(row)
    return picked


def foreign_markers(world: World, viewer: Viewer) -> list[str]:
    """Text of the foreign sites and study, the admin links of every foreign row, and the
    prefixes of other staff members' API keys; for a researcher, the identifiers of their own
    study's participants too."""
    markers = world.markers(*viewer.foreign_tags)
    if not viewer.sees_identifiers:
        markers += world.identifiers(*viewer.own_tags)
    for model in admin.site._registry:
        scope = SCOPE[model_key(model)]
        if scope.site or scope.study:
            markers += [change_url(row) for row in foreign_rows(model, viewer)]
    markers += list(
        StaffApiToken.objects.exclude(user=viewer.user).values_list("prefix", flat=True)
    )
    return markers


def request_as(user):
    request = RequestFactory().get("/admin/")
    request.user = user
    return request


def fetch(problems: list, client: Client, method: str, url: str, **kwargs):
    """The response, or None with the exception recorded as a problem (a 500 in production).
    A savepoint keeps a failed request from breaking the test's transaction on PostgreSQL."""
    try:
        with transaction.atomic():
            return getattr(client, method)(url, **kwargs)
    except Exception as exc:
        problems.append(f"{method.upper()} {url}: 500 ({type(exc).__name__}: {exc})"[:400])
        return None


def leaks(problems, who, method, url, response, markers, *, case_insensitive=False) -> None:
    if response is None:
        return
    hits = found(body_of(response), markers, case_insensitive=case_insensitive)
    if hits:
        problems.append(f"{who}: {method} {url} → {response.status_code} shows {hits[:6]}")


def refused(response, obj_pk) -> bool:
    """403/404/405/400, or a redirect that leads away from the object."""
    if response is None:
        return True
    if response.status_code in (400, 401, 403, 404, 405):
        return True
    if response.status_code in (301, 302, 303):
        return f"/{obj_pk}/" not in response.headers.get("Location", "")
    return False


def get_refused(problems, client, url, obj_pk):
    """GET, following redirects that stay on the object's own pages (``<id>/`` → change)."""
    response = fetch(problems, client, "get", url)
    hops = 0
    while (
        response is not None
        and response.status_code in (301, 302)
        and f"/{obj_pk}/" in response.headers.get("Location", "")
        and hops < 3
    ):
        response = fetch(problems, client, "get", response.headers["Location"])
        hops += 1
    return response


def world_and_clients(world: World, viewer: Viewer) -> tuple[Client, Client]:
    client = Client()
    client.force_login(viewer.user)
    root = Client()
    root.force_login(world.superuser)
    return client, root


def change_post(root: Client, world: World, obj, problems) -> dict | None:
    """The change form of ``obj`` as the superuser's page holds it, with MUTATE applied."""
    url = change_url(obj)
    page = fetch(problems, root, "get", url)
    if page is None or page.status_code != 200:
        problems.append(f"superuser: GET {url} → {getattr(page, 'status_code', 500)}")
        return None
    data = form_data(body_of(page), f"{obj._meta.model_name}_form")
    # The empty extra forms of inlines go: their initial values (a time of now) would make
    # them count as filled in, and the whole form invalid.
    for key in [k for k in data if k.endswith("-TOTAL_FORMS")]:
        prefix = key[: -len("-TOTAL_FORMS")]
        initial = int(data[f"{prefix}-INITIAL_FORMS"][0])
        data[key] = [str(initial)]
        for name in list(data):
            match = re.match(rf"{re.escape(prefix)}-(\d+)-", name)
            if match and int(match.group(1)) >= initial:
                del data[name]
    mutate = MUTATE.get(model_key(type(obj)))
    if mutate:
        for name, value in mutate(obj, world).items():
            data[name] = value if isinstance(value, list) else [value]
    data["_save"] = ["Save"]
    return data


@pytest.fixture
def world(db) -> World:
    return world_build()


# --- 1. The map covers every registered model -------------------------------------------------


def _path_to(model, target, depth: int = 4) -> str | None:
    """The shortest chain of foreign keys from ``model`` to ``target`` ("" for itself)."""
    if model is target:
        return ""
    frontier = [(model, "")]
    for _ in range(depth):
        following = []
        for current, path in frontier:
            for field in current._meta.get_fields():
                if not (field.many_to_one or field.one_to_one) or not field.concrete:
                    continue
                step = f"{path}__{field.name}" if path else field.name
                if field.related_model is target:
                    return step
                following.append((field.related_model, step))
        frontier = following
    return None


def test_every_registered_model_is_in_the_scope_map(world):
    problems = []
    for model in admin.site._registry:
        key = model_key(model)
        if key not in SCOPE:
            problems.append(
                f"{key} is registered in the admin but not in SCOPE: say how its rows belong "
                "to a site, a study or a user, so that the matrix checks its pages"
            )
            continue
        scope = SCOPE[key]
        reaches_site = _path_to(model, Site)
        if reaches_site is not None and not scope.site:
            problems.append(f"{key} reaches Site by {reaches_site!r}: give SCOPE a site lookup")
        if _path_to(model, Study) is not None and not (scope.site or scope.study):
            problems.append(f"{key} reaches Study: give SCOPE a study lookup")
        for lookup, value in (("site", Site), ("study", Study), ("user", User)):
            path = getattr(scope, lookup)
            if path:  # a wrong path raises
                model.objects.filter(_in(path, value.objects.all())).exists()
    # The world has a row of each scoped model at each site or study: else a family checks
    # nothing for that model.
    coordinator = viewer_of(world, "coordinator_a")
    for model in admin.site._registry:
        if SCOPE.get(model_key(model), Scope()) != Scope() and not picked_foreign(
            model, coordinator
        ):
            problems.append(f"the world has no foreign {model_key(model)} row to try")
    assert not problems, "\n".join(problems)


# --- 2. Model pages: changelists, change, delete and history pages, change and delete POSTs ----

VIEWERS = ("coordinator_a", "coordinator_b", "pi", "researcher")


def picked_own(model, viewer: Viewer) -> list:
    """One row of each of the viewer's own sites (or own study, or their own row)."""
    scope = SCOPE[model_key(model)]
    if scope.site:
        groups = [_in(scope.site, [site]) for site in viewer.own_sites]
    elif scope.study:
        groups = [_in(scope.study, [study]) for study in viewer.own_studies]
    elif scope.user:
        groups = [_in(scope.user, [viewer.user])]
    else:
        groups = []
    if scope.user:  # a staff member's own things in their study: theirs only
        groups = [group & _in(scope.user, [viewer.user]) for group in groups]
    rows = [model.objects.filter(group).order_by("pk").first() for group in groups]
    return [row for row in dict.fromkeys(rows) if row is not None]


def _filter_queries(scope: Scope, sites, studies) -> list[str]:
    queries = [f"site__id__exact={site.pk}" for site in sites]
    if scope.site and scope.site not in ("pk", "sites"):
        queries += [f"{scope.site}__id__exact={site.pk}" for site in sites]
    if scope.study and scope.study != "pk":
        queries += [f"{scope.study}__id__exact={study.pk}" for study in studies]
    return list(dict.fromkeys(queries))


@pytest.mark.parametrize("who", VIEWERS)
def test_model_pages_show_and_change_nothing_of_another_site(world, who):
    viewer = viewer_of(world, who)
    client, root = world_and_clients(world, viewer)
    markers = foreign_markers(world, viewer)
    request = request_as(viewer.user)
    problems: list[str] = []
    searches = [p.code for p in world.at(*viewer.foreign_tags)] + [
        s.name for s in viewer.foreign_sites
    ]
    checked = 0
    for model, model_admin in admin.site._registry.items():
        key, opts = model_key(model), model._meta
        info = f"admin:{opts.app_label}_{opts.model_name}"
        scope = SCOPE[key]
        may_view = model_admin.has_view_permission(request)
        own_links = [change_url(row) for row in own_rows(model, viewer)]

        # The changelist: nothing foreign, and (the control) the own rows.
        listing_url = reverse(f"{info}_changelist")
        listing = fetch(problems, client, "get", listing_url)
        leaks(problems, who, "GET", listing_url, listing, markers)
        if listing is not None:
            if not may_view and listing.status_code != 403:
                problems.append(f"{who}: GET {listing_url} → {listing.status_code}, not 403")
            if may_view and own_links and not any(u in body_of(listing) for u in own_links):
                problems.append(f"control: {who} does not see their own {key} in {listing_url}")
        # Filtered and searched with the foreign site's or study's ids and names.
        for query in [
            *_filter_queries(scope, viewer.foreign_sites, viewer.foreign_studies),
            *[f"q={quote(text)}" for text in searches],
        ]:
            url = f"{listing_url}?{query}"
            # A search box shows what was searched: that text alone is no leak, the rows are.
            echoed = [m for m in markers if query != f"q={quote(m)}"]
            leaks(problems, who, "GET", url, fetch(problems, client, "get", url), echoed)
        for query in _filter_queries(scope, viewer.own_sites, viewer.own_studies):
            url = f"{listing_url}?{query}"
            response = fetch(problems, client, "get", url)
            if (
                response is not None
                and response.status_code == 200
                and own_links
                and not any(link in body_of(response) for link in own_links)
            ):
                problems.append(f"control: {who} GET {url} lists none of their own rows")
        # The add page offers nothing of another site (site and study choices, users...).
        url = reverse(f"{info}_add")
        response = fetch(problems, client, "get", url)
        leaks(problems, who, "GET", url, response, markers)
        choice_leaks(problems, who, url, model, response, viewer)

        # The foreign rows' own pages: never shown, and POSTs to them change nothing.
        posts = []
        for obj in picked_foreign(model, viewer):
            checked += 1
            for page in ("change", "delete", "history"):
                url = reverse(f"{info}_{page}", args=[obj.pk])
                response = get_refused(problems, client, url, obj.pk)
                if not refused(response, obj.pk):
                    problems.append(
                        f"{who}: GET {url} ({key} of another site/study) → "
                        f"{response.status_code}, the page itself"
                    )
                leaks(problems, who, "GET", url, response, markers)
            data = change_post(root, world, obj, problems)
            if data is not None:
                posts.append((obj, change_url(obj), data))
            posts.append((obj, reverse(f"{info}_delete", args=[obj.pk]), {"post": "yes"}))
        before = db_snapshot()
        for obj, url, data in posts:
            response = fetch(problems, client, "post", url, data=data)
            if not refused(response, obj.pk):
                problems.append(f"{who}: POST {url} → {response.status_code}")
            leaks(problems, who, "POST", url, response, markers)
        changed = snapshot_diff(before, db_snapshot())
        if changed:
            problems.append(f"{who}: POSTs to {[u for _, u, _ in posts]} changed {changed}")

        # The own rows' pages open (the control), and show nothing of another site either.
        for obj in picked_own(model, viewer):
            for page in ("change", "history"):
                url = reverse(f"{info}_{page}", args=[obj.pk])
                response = fetch(problems, client, "get", url)
                leaks(problems, who, "GET", url, response, markers)
                choice_leaks(problems, who, url, model, response, viewer)
                if may_view and response is not None and response.status_code != 200:
                    problems.append(
                        f"control: {who} GET {url} (own {key}) → {response.status_code}"
                    )

    # The positive control of the POSTs: the same mutation does change an own row wherever the
    # viewer may change it (so a refused POST above is refused, not merely malformed).
    changes_tried = 0
    for model, model_admin in admin.site._registry.items():
        for own in picked_own(model, viewer)[:1]:
            if not model_admin.has_change_permission(request, own):
                continue
            if model_key(model) not in MUTATE:
                problems.append(f"{model_key(model)} is changeable: teach MUTATE how to change it")
                continue
            data = change_post(root, world, own, problems)
            before = db_snapshot()
            response = fetch(problems, client, "post", change_url(own), data=data)
            changes_tried += 1
            if not snapshot_diff(before, db_snapshot()):
                problems.append(
                    f"control: {who} POST {change_url(own)} (own {model_key(model)}) → "
                    f"{getattr(response, 'status_code', 500)} changed nothing "
                    f"{_form_errors(response)}"
                )
    if not viewer.sees_identifiers:
        # A researcher changes nothing, not even in their own study: the same mutation of
        # their study's rows changes nothing when they post it, and does when the PI posts it
        # (so it is refused, not malformed).
        changes_tried = _read_only_control(problems, who, client, root, world, viewer)
        assert changes_tried >= 8, changes_tried
    else:
        assert changes_tried >= (8 if who == "pi" else 2), changes_tried
    assert checked >= 20, checked
    assert not problems, "\n".join(problems)


def _read_only_control(problems, who, client, root, world: World, viewer: Viewer) -> int:
    """The own-study rows the PI may change: posted by ``client`` they stay as they were,
    posted by the PI they change. The number of rows tried."""
    pi = Client()
    pi.force_login(world.pi)
    pi_request = request_as(world.pi)
    tried = 0
    for model, model_admin in admin.site._registry.items():
        if model_key(model) not in MUTATE:
            continue
        for own in picked_own(model, viewer)[:1]:
            if not model_admin.has_change_permission(pi_request, own):
                continue
            url = change_url(own)
            data = change_post(root, world, own, problems)
            before = db_snapshot()
            response = fetch(problems, client, "post", url, data=data)
            changed = snapshot_diff(before, db_snapshot())
            if not refused(response, own.pk) or changed:
                problems.append(
                    f"{who}: POST {url} (own study's {model_key(model)}) → "
                    f"{getattr(response, 'status_code', 500)}, changed {changed}"
                )
            tried += 1
            response = fetch(problems, pi, "post", url, data=data)
            if not snapshot_diff(before, db_snapshot()):
                problems.append(
                    f"control: the PI's POST {url} → {getattr(response, 'status_code', 500)} "
                    f"changed nothing {_form_errors(response)}"
                )
    return tried


def _related_model(model, name: str):
    """The model a form field's choices come from: ``study``, or an inline's
    ``waveinstrument_set-0-instrument``; None for anything else."""
    match = re.match(r"(.+)-(?:\d+|__prefix__)-(\w+)$", name)
    target, field_name = model, name
    if match:
        accessor, field_name = match.groups()
        target = next(
            (r.related_model for r in model._meta.related_objects
             if r.get_accessor_name() == accessor),
            None,
        )  # fmt: skip
        if target is None:
            return None
    try:
        field = target._meta.get_field(field_name)
    except Exception:
        return None
    return field.related_model if field.is_relation else None


def choice_leaks(problems, who, url, model, response, viewer: Viewer) -> None:
    """A select of a form offers a row of another site or study (by its id: two studies'
    waves and instruments have the same names, so text alone would not tell)."""
    if response is None or response.status_code != 200:
        return
    options = select_options(body_of(response), f"{model._meta.model_name}_form")
    for name, values in options.items():
        related = _related_model(model, name)
        scope = SCOPE.get(model_key(related)) if related is not None else None
        if scope is None or not (scope.site or scope.study):
            continue  # staff users, languages, statuses: not a site's or study's data
        foreign = {str(pk) for pk in foreign_rows(related, viewer).values_list("pk", flat=True)}
        offered = sorted(foreign & set(values), key=int)
        if offered:
            problems.append(
                f"{who}: GET {url} offers {model_key(related)} of another site/study as a "
                f"choice of {name!r}: ids {offered[:6]}"
            )


def _form_errors(response) -> str:
    if response is None or response.status_code != 200:
        return ""
    text = body_of(response)
    errors = re.findall(r'<ul class="errorlist[^"]*"[^>]*>(.*?)</ul>', text, re.S)
    return "; ".join(re.sub(r"<[^>]+>", " ", e).strip() for e in errors)[:600]


# --- 3. Admin actions posted with another site's rows -------------------------------------------


@pytest.mark.parametrize("who", VIEWERS)
def test_admin_actions_on_another_sites_rows_change_nothing(world, who):
    viewer = viewer_of(world, who)
    client, _ = world_and_clients(world, viewer)
    problems: list[str] = []
    markers = world.markers(*viewer.foreign_tags)
    if not viewer.sees_identifiers:
        markers += world.identifiers(*viewer.own_tags)
    tried = 0
    for model, model_admin in admin.site._registry.items():
        opts = model._meta
        listing = reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")
        actions = model_admin.get_actions(request_as(world.superuser))
        foreign = [str(pk) for pk in foreign_rows(model, viewer).values_list("pk", flat=True)]
        if not foreign:
            continue
        for name in actions:
            tried += 1
            before = db_snapshot()
            data = {"action": name, "_selected_action": foreign, "index": "0", "post": "yes"}
            response = fetch(problems, client, "post", listing, data=data)
            changed = snapshot_diff(before, db_snapshot())
            if changed:
                problems.append(
                    f"{who}: action {name!r} on {model_key(model)} rows of another site/study "
                    f"changed {changed}"
                )
            leaks(problems, who, f"POST action {name}", listing, response, markers)
    # The controls: the same actions on the viewer's own rows do act (a researcher's do not:
    # they change nothing in their own study either; the PI's same POSTs do).
    own = [p.participant for p in world.at(*viewer.own_tags)]
    pi = Client()
    pi.force_login(world.pi)
    for name, model, rows in (
        ("revoke_links", Participant, own),
        ("pin_remove", Participant, [p for p in own if p.pin_hash] or own),
        ("send_now", Message, list(Message.objects.filter(
            assignment__participant__in=own, assignment__wave__slug="m1"))),
    ):  # fmt: skip
        listing = reverse(f"admin:surveys_{model._meta.model_name}_changelist")
        before = db_snapshot()
        data = {"action": name, "_selected_action": [str(r.pk) for r in rows], "index": "0"}
        response = fetch(problems, client, "post", listing, data=data)
        leaks(problems, who, f"POST action {name}", listing, response, markers)
        acted = bool(snapshot_diff(before, db_snapshot()))
        if viewer.sees_identifiers and not acted:
            problems.append(f"control: {who}'s action {name!r} on their own rows changed nothing")
        if not viewer.sees_identifiers:
            if acted:
                problems.append(f"{who}'s action {name!r} on their own study's rows acted")
            fetch(problems, pi, "post", listing, data=data)
            if not snapshot_diff(before, db_snapshot()):
                problems.append(f"control: the PI's action {name!r} on the same rows did not act")
    # Every staff member's own action: revoking their own API key acts.
    key = StaffApiToken.objects.filter(user=viewer.user, revoked_at__isnull=True).first()
    before = db_snapshot()
    fetch(
        problems, client, "post", reverse("admin:surveys_staffapitoken_changelist"),
        data={"action": "revoke", "_selected_action": [str(key.pk)], "index": "0"},
    )  # fmt: skip
    if not snapshot_diff(before, db_snapshot()):
        problems.append(f"control: {who}'s action 'revoke' on their own API key changed nothing")
    assert tried >= 5, tried
    assert not problems, "\n".join(problems)


# --- 4. Custom admin pages: with another site's ids, and without ids -----------------------------


def _param_model(route: Route, param: str):
    if param in PARAM_MODELS:
        return PARAM_MODELS[param]
    if param == "object_id" and route.model_admin is not None:
        return route.model_admin.model
    if param.endswith("_id"):
        name = param[: -len("_id")].replace("_", "")
        for model in admin.site._registry:
            if model._meta.model_name == name:
                return model
    return None


def _is_standard(route: Route) -> bool:
    return (
        bool(route.name) and route.model_admin is not None and route.name.endswith(STANDARD_PAGES)
    )


def _plain_values(route: Route) -> list[dict] | None:
    """Values for a route without object ids (one dict per URL), or None if not understood."""
    values: list[dict] = [{}]
    for param in route.params:
        if param == "app_label":
            choices = route.route.split("(?P<app_label>")[1].split(")")[0].split("|")
            values = [{**v, param: choice} for v in values for choice in choices]
        elif param in PARAM_VALUES and PARAM_VALUES[param] is not None:
            values = [{**v, param: PARAM_VALUES[param]} for v in values]
        else:
            return None
    return values


def _id_values(route: Route, rows_of) -> list[tuple[dict, object]] | None:
    """(values, object) pairs for a route naming objects, from ``rows_of(model)``; None if a
    parameter is not understood."""
    if route.params == ("content_type_id", "object_id"):  # the admin's "view on site"
        out = []
        for model in admin.site._registry:
            for obj in rows_of(model)[:1]:
                ct = ContentType.objects.get_for_model(model)
                out.append(({"content_type_id": ct.pk, "object_id": obj.pk}, obj))
        return out
    id_params = [p for p in route.params if _param_model(route, p) is not None]
    if len(id_params) != 1:
        return None
    param = id_params[0]
    model = _param_model(route, param)
    out = []
    for obj in rows_of(model):
        values = {param: obj.slug if param.endswith("_slug") else obj.pk}
        for other in route.params:
            if other == param:
                continue
            if other in ("slug", "instrument_slug") and isinstance(obj, Assignment):
                values[other] = obj.wave.instruments.first().slug
            elif other in PARAM_VALUES and PARAM_VALUES[other] is not None:
                values[other] = PARAM_VALUES[other]
            else:
                return None
        out.append((values, obj))
    return out


def _probes(viewer: Viewer, world: World) -> list[str]:
    """Query strings that name another site's or study's things."""
    site = viewer.foreign_sites[0]
    person = world.at(*viewer.foreign_tags)[0]
    return [
        "",
        f"?site={site.pk}",
        f"?site__id__exact={site.pk}",
        f"?study={viewer.foreign_studies[0].pk}",
        f"?participant={person.participant.pk}",
    ]


@pytest.mark.parametrize("who", VIEWERS)
def test_custom_admin_pages_show_and_change_nothing_of_another_site(world, who):
    viewer = viewer_of(world, who)
    client, _ = world_and_clients(world, viewer)
    markers = foreign_markers(world, viewer)
    problems: list[str] = []
    with_ids = without_ids = own_pages_open = 0
    for route in admin_routes():
        if _is_standard(route) or route.name in ADMIN_SKIP:
            continue
        pairs = _id_values(route, lambda model: picked_foreign(model, viewer))
        if pairs == []:
            problems.append(f"{route.route}: the world has no object of another site to try")
            continue
        if pairs:
            for values, obj in pairs:
                with_ids += 1
                url = route.url(**values)
                response = get_refused(problems, client, url, obj.pk)
                if not refused(response, obj.pk):
                    problems.append(
                        f"{who}: GET {url} ({model_key(type(obj))} of another site/study) → "
                        f"{response.status_code}"
                    )
                leaks(problems, who, "GET", url, response, markers)
                before = db_snapshot()
                response = fetch(problems, client, "post", url, data={})
                changed = snapshot_diff(before, db_snapshot())
                if changed:
                    problems.append(f"{who}: POST {url} changed {changed}")
                leaks(problems, who, "POST", url, response, markers)
            # The same pages for the viewer's own objects: open for some, and never showing
            # another site even when a query names it.
            own_pairs = _id_values(route, lambda model: list(own_rows(model, viewer)[:1]))
            for values, _obj in own_pairs or []:
                for probe in _probes(viewer, world):
                    url = route.url(**values) + probe
                    response = fetch(problems, client, "get", url)
                    if probe == "" and response is not None and response.status_code == 200:
                        own_pages_open += 1
                    leaks(problems, who, "GET", url, response, markers)
            continue
        plain = _plain_values(route)
        if plain is None:
            problems.append(
                f"{route.route}: parameters {route.params} not understood; teach the matrix "
                "(PARAM_MODELS or PARAM_VALUES) which object or value each one names"
            )
            continue
        for values in plain:
            for probe in _probes(viewer, world):
                without_ids += 1
                url = route.url(**values) + probe
                leaks(problems, who, "GET", url, fetch(problems, client, "get", url), markers)
    # Autocomplete (the admin's search-as-you-type for foreign keys), for every field that has
    # it: searching another site's study ID finds nothing.
    for model, model_admin in admin.site._registry.items():
        for field_name in model_admin.get_autocomplete_fields(request_as(viewer.user)):
            for person in world.at(*viewer.foreign_tags):
                url = (
                    f"{reverse('admin:autocomplete')}?app_label={model._meta.app_label}"
                    f"&model_name={model._meta.model_name}&field_name={field_name}"
                    f"&term={quote(person.code)}"
                )
                echoed = [m for m in markers if m != person.code]
                leaks(problems, who, "GET", url, fetch(problems, client, "get", url), echoed)
    assert with_ids >= 10 and without_ids >= 10, (with_ids, without_ids)
    assert own_pages_open >= 4, own_pages_open
    assert not problems, "\n".join(problems)


def test_coordinator_pages_show_their_own_site_the_controls(world):
    """The positive controls of the custom pages: a coordinator's own participants are on the
    call list with their phone, their timeline and consent copy open, and send-now acts."""
    client = Client()
    client.force_login(world.coordinator_a)
    a1 = world.people["A1"]
    call_list = client.get(reverse("admin:surveys_assignment_call_list")).text
    assert a1.code in call_list and a1.phone in call_list
    timeline = client.get(reverse("admin:surveys_participant_timeline", args=[a1.participant.pk]))
    assert timeline.status_code == 200 and a1.code in timeline.text
    assert "Attemptnote-A1" in timeline.text  # coordinators see their contact log
    printed = client.get(reverse("admin:surveys_consent_print", args=[a1.consent.pk]))
    assert printed.status_code == 200
    retention = client.get(reverse("admin:surveys_study_retention", args=[world.study.pk]))
    assert retention.status_code == 200 and "NYC" in retention.text
    before = db_snapshot()
    client.post(reverse("admin:surveys_assignment_send_now", args=[a1.m1.pk]))
    assert snapshot_diff(before, db_snapshot()), "send-now on an own survey changed nothing"


# --- 5. Requests that name another site or study in their body --------------------------------


def _import_csv(site: Site, email: str) -> SimpleUploadedFile:
    day = (timezone.localdate() - timedelta(days=1)).isoformat()
    text = f"site,email,consent_method,consent_date\n{site.code},{email},verbal,{day}\n"
    return SimpleUploadedFile("participants.csv", text.encode())


def test_a_coordinator_cannot_put_anything_at_another_site(world):
    """Enrolment (admin, API, CSV import), moving a participant, and a contact attempt against a
    survey: each naming site B, each refused; the same naming site A works (the controls)."""
    client, root = world_and_clients(world, viewer_of(world, "coordinator_a"))
    a1, b1 = world.people["A1"], world.people["B1"]
    day = (timezone.localdate() - timedelta(days=1)).isoformat()
    problems: list[str] = []

    def at_site(site):
        return Participant.objects.filter(site=site).count()

    def enrol_form(site):
        return {
            "study": world.study.pk, "site": site.pk, "code": "", "status": "active",
            "enrolled_on": day, "timezone": site.timezone, "language": "en",
            "preferred_channel": "email", "consent_method": "verbal", "consent_date": day,
            "contact-TOTAL_FORMS": "1", "contact-INITIAL_FORMS": "0",
            "contact-MIN_NUM_FORMS": "0", "contact-MAX_NUM_FORMS": "1",
            "contact-0-email": f"enrolled-at-{site.code.lower()}@example.org",
        }  # fmt: skip

    # Enrolment in the admin.
    add = reverse("admin:surveys_participant_add")
    before = at_site(world.site_b)
    fetch(problems, client, "post", add, data=enrol_form(world.site_b))
    if at_site(world.site_b) != before:
        problems.append(f"coordinator A enrolled a participant at site B: POST {add}")
    before = at_site(world.site_a)
    fetch(problems, client, "post", add, data=enrol_form(world.site_a))
    if at_site(world.site_a) != before + 1:
        problems.append("control: coordinator A cannot enrol at site A in the admin")

    # Enrolment through the API.
    url = f"/api/v1/studies/{world.study.slug}/participants/"
    for site, expect_created in ((world.site_b, False), (world.site_a, True)):
        before = at_site(site)
        reply = client.post(
            url,
            {"site": site.code, "consent": {"method": "verbal", "date": day}},
            content_type="application/json",
        )
        created = at_site(site) == before + 1
        if created != expect_created:
            problems.append(f"API enrolment at {site.code} → {reply.status_code}, {created=}")

    # A CSV import: the preview of a site-B row carries no payload to confirm, and the
    # confirm step enrols nobody there.
    upload = reverse("admin:surveys_participant_import")
    confirm = reverse("admin:surveys_participant_import_confirm")
    before = at_site(world.site_b)
    preview = fetch(
        problems, client, "post", upload,
        data={"study": world.study.pk, "file": _import_csv(world.site_b, "csv-b@example.org")},
    )  # fmt: skip
    if preview is not None and 'name="payload"' in body_of(preview):
        problems.append(f"POST {upload} with a row of site B offers to confirm it")
    payload = re.search(r'name="payload" value="([^"]+)"', body_of(preview) if preview else "")
    if payload:
        fetch(problems, client, "post", confirm, data={"payload": payload.group(1)})
    if at_site(world.site_b) != before:
        problems.append("coordinator A imported a participant at site B")
    before = at_site(world.site_a)
    preview = client.post(
        upload, {"study": world.study.pk, "file": _import_csv(world.site_a, "csv-a@example.org")}
    )
    payload = re.search(r'name="payload" value="([^"]+)"', preview.text)
    if payload:
        client.post(confirm, {"payload": payload.group(1)})
    if at_site(world.site_a) != before + 1:
        problems.append("control: coordinator A cannot import a row of site A")

    # Moving their own participant to site B.
    data = change_post(root, world, a1.participant, problems) or {}
    data["site"] = [str(world.site_b.pk)]
    data["code"] = [a1.code]
    fetch(problems, client, "post", change_url(a1.participant), data=data)
    if Participant.objects.get(pk=a1.participant.pk).site_id != world.site_a.pk:
        problems.append("coordinator A moved their participant to site B")

    # A contact attempt logged on their own participant's page against a survey of site B.
    def attempt_form(assignment):
        data = change_post(root, world, a1.participant, problems) or {}
        index = int(data["contact_attempts-INITIAL_FORMS"][0])
        data.update(
            {
                "code": [a1.code],
                "contact_attempts-TOTAL_FORMS": [str(index + 1)],
                f"contact_attempts-{index}-attempted_at_0": [day],
                f"contact_attempts-{index}-attempted_at_1": ["10:00:00"],
                f"contact_attempts-{index}-method": ["call"],
                f"contact_attempts-{index}-outcome": ["reached"],
                f"contact_attempts-{index}-assignment": [str(assignment.pk)],
                f"contact_attempts-{index}-note": ["Logged by the scope matrix"],
            }
        )
        return data

    # The attempts logged here: the new rows (a note is encrypted at rest, not looked up by).
    attempts = ContactAttempt.objects.exclude(
        pk__in=list(ContactAttempt.objects.values_list("pk", flat=True))
    )
    fetch(problems, client, "post", change_url(a1.participant), data=attempt_form(b1.m1))
    if attempts.filter(assignment=b1.m1).exists():
        problems.append("coordinator A logged a contact attempt against site B's survey")
    client.post(change_url(a1.participant), attempt_form(a1.m1))
    if not attempts.filter(assignment=a1.m1).exists():
        problems.append("control: coordinator A cannot log an attempt on their own survey")
    assert not problems, "\n".join(problems)


def test_a_pi_cannot_write_into_another_study(world):
    """A PI's forms take only their own study's rows: a reminder rule is not added to another
    study, and another study's instrument is not attached to their own wave."""
    client, root = world_and_clients(world, viewer_of(world, "pi"))
    problems: list[str] = []
    faraway_wave = world.faraway.waves.get(slug="m1")
    rules = ReminderRule.objects.filter(study=world.faraway)
    before = rules.count()
    response = fetch(
        problems, client, "post", reverse("admin:surveys_reminderrule_add"),
        data={"study": world.faraway.pk, "wave": faraway_wave.pk, "kind": "invitation",
              "position": "5", "is_active": "on"},
    )  # fmt: skip
    if rules.count() != before:
        problems.append(
            f"PI of {world.study.slug!r} added a reminder rule to {world.faraway.slug!r} "
            f"(POST /admin/surveys/reminderrule/add/ → {response.status_code}): its messages "
            "are planned again"
        )
    own_wave = world.study.waves.get(slug="m3")
    foreign_instrument = world.faraway.instruments.first()
    data = change_post(root, world, own_wave, problems) or {}
    index = int(data["waveinstrument_set-INITIAL_FORMS"][0])
    data |= {
        "waveinstrument_set-TOTAL_FORMS": [str(index + 1)],
        f"waveinstrument_set-{index}-instrument": [str(foreign_instrument.pk)],
        f"waveinstrument_set-{index}-position": ["5"],
        f"waveinstrument_set-{index}-wave": [str(own_wave.pk)],
        "name": [own_wave.name],
    }
    response = fetch(problems, client, "post", change_url(own_wave), data=data)
    if own_wave.instruments.filter(pk=foreign_instrument.pk).exists():
        problems.append(
            f"PI attached {world.faraway.slug!r}'s instrument {foreign_instrument.slug!r} to "
            f"their wave (POST {change_url(own_wave)} → {response.status_code})"
        )
    # The control: the same rule in their own study is added.
    before = ReminderRule.objects.filter(study=world.study).count()
    client.post(
        reverse("admin:surveys_reminderrule_add"),
        {"study": world.study.pk, "wave": world.study.waves.get(slug="m1").pk,
         "kind": "invitation", "position": "5", "is_active": "on"},
    )  # fmt: skip
    assert ReminderRule.objects.filter(study=world.study).count() == before + 1
    assert not problems, "\n".join(problems)


def _cells(html: str) -> list[str]:
    """The cells of the dashboard's tables (not the admin's navigation)."""
    tables = re.findall(r'<div class="module retention-table">(.*?)</table>', html, re.S)
    return [cell for table in tables for cell in re.findall(r"<td>(.*?)</td>", table, re.S)]


def test_a_coordinators_retention_counts_only_their_site(world):
    """The dashboard's numbers for coordinator A are the PI's numbers for site A, in every
    split: aggregates of site B are data of site B too."""
    try:
        url = reverse("admin:surveys_study_retention", args=[world.study.pk])
    except NoReverseMatch:
        pytest.skip("no retention dashboard yet")
    coordinator, pi = Client(), Client()
    coordinator.force_login(world.coordinator_a)
    pi.force_login(world.pi)
    page = pi.get(url)
    assert page.status_code == 200
    select = re.search(r'<select name="subgroup".*?</select>', page.text, re.S)
    splits = ["", *re.findall(r'<option value="(\w+)"', select.group(0) if select else "")]
    problems = []
    for split in splits:
        mine = coordinator.get(f"{url}?subgroup={split}")
        theirs = pi.get(f"{url}?site={world.site_a.pk}&subgroup={split}")
        if _cells(mine.text) != _cells(theirs.text):
            problems.append(f"coordinator A's {url}?subgroup={split} counts more than site A")
    # The control: the PI's numbers for both sites differ from site A's.
    site_a = _cells(pi.get(f"{url}?site={world.site_a.pk}").text)
    assert site_a and _cells(pi.get(url).text) != site_a
    # The same numbers through the API, when it has them.
    try:
        api = reverse("api:retention-summary", args=[world.study.slug])
    except NoReverseMatch:
        api = None
    if api is not None:
        for split in splits:
            mine = coordinator.get(f"{api}?subgroup={split}").json()
            theirs = pi.get(f"{api}?site={world.site_a.code}&subgroup={split}").json()
            mine.pop("site", None), theirs.pop("site", None)
            if mine != theirs:
                problems.append(f"coordinator A's {api}?subgroup={split} counts more than site A")
        both = pi.get(api).json()
        assert both["waves"] != pi.get(f"{api}?site={world.site_a.code}").json()["waves"]
    assert not problems, "\n".join(problems)


# --- 6. The API --------------------------------------------------------------------------------

API_ROUTES = lambda: routes_of(api_urls.urlpatterns, "api/v1/")  # noqa: E731


def _methods(route: Route) -> list[str]:
    view_class = getattr(route.view, "view_class", None) or getattr(route.view, "cls", None)
    if view_class is None:
        return ["get", "post"]
    return [m for m in ("get", "post", "put", "patch", "delete") if hasattr(view_class, m)]


def _api_body(viewer: Viewer) -> dict:
    return {
        "client_id": str(uuid.uuid4()),
        "answers": {"sponsor_name": "Injected-by-the-scope-matrix"},
        "position": "",
        "site": viewer.foreign_sites[0].code,
        "consent": {"method": "verbal", "date": timezone.localdate().isoformat()},
        "contact": {"first_name": "Injected"},
        "csv": "",
    }


def _api_probes(viewer: Viewer, world: World) -> list[str]:
    """Query strings naming another site (by code and by id) or another participant."""
    site = viewer.foreign_sites[0]
    person = world.at(*viewer.foreign_tags)[0]
    return [
        "",
        f"?site={site.code}",
        f"?site={site.pk}",
        f"?participant={person.participant.pk}",
        f"?study_id={person.code}",
    ]


def _api_rows(viewer: Viewer, world: World) -> Callable:
    """The foreign objects an API parameter names: open surveys of the other site's
    participants, the other study; and the viewer's own study (with a foreign site in the
    body)."""

    def rows(model):
        if model is Assignment:
            return [p.m1 for p in world.at(*viewer.foreign_tags)]
        if model is Study:
            return [*viewer.foreign_studies]
        return picked_foreign(model, viewer)

    return rows


def _api_walk(problems, who, client, viewer, world, markers, *, headers=None) -> int:
    calls = 0
    headers = headers or {}
    for route in API_ROUTES():
        pairs = _id_values(route, _api_rows(viewer, world))
        if route.params and pairs is None:
            problems.append(f"api {route.route}: parameters {route.params} not understood")
            continue
        for method in _methods(route):
            kwargs = {**headers}
            if method != "get":
                kwargs |= {"data": _api_body(viewer), "content_type": "application/json"}
            targets = [(route.url(**values), obj) for values, obj in pairs or []]
            own = []
            if "study_slug" in route.params:  # own study, another site in the body or query
                own.append(route.url(study_slug=world.study.slug))
            if not route.params:
                own.append(route.url())
            for url in own:
                targets += [(url + probe, None) for probe in _api_probes(viewer, world)]
            before = db_snapshot() if method != "get" else None
            for url, obj in targets:
                calls += 1
                response = fetch(problems, client, method, url, **kwargs)
                leaks(problems, who, method.upper(), url, response, markers)
                if obj is not None and response is not None and response.status_code < 400:
                    problems.append(
                        f"{who}: {method.upper()} {url} ({model_key(type(obj))} of another "
                        f"site/study) → {response.status_code}"
                    )
            if before is not None:
                changed = snapshot_diff(before, db_snapshot())
                if changed:
                    urls = [url for url, _ in targets]
                    problems.append(f"{who}: {method.upper()} {urls} changed {changed}")
    return calls


@pytest.mark.parametrize("who", VIEWERS)
@pytest.mark.parametrize("auth", ["session", "bearer"])
def test_the_api_never_exposes_or_changes_another_site(world, who, auth):
    viewer = viewer_of(world, who)
    client = Client()
    headers = {}
    if auth == "session":
        client.force_login(viewer.user)
    else:
        headers = {"HTTP_AUTHORIZATION": f"Bearer {world.tokens[viewer.user.username]}"}
    markers = foreign_markers(world, viewer)
    problems: list[str] = []
    calls = _api_walk(problems, who, client, viewer, world, markers, headers=headers)
    # The controls: the call list shows the own participants (with phones; a researcher's
    # without), a draft of an own survey is saved (a researcher's is refused and saves nothing).
    rows = client.get("/api/v1/call-list/", **headers).json()
    codes = {row["study_id"] for row in rows}
    phones = {row["phone"] for row in rows}
    for person in world.at(*viewer.own_tags):
        if person.code not in codes:
            problems.append(f"control: {who}'s API call list lacks {person.code}")
        elif viewer.sees_identifiers and person.phone not in phones:
            problems.append(f"control: {who}'s API call list lacks {person.code}'s phone")
    if not viewer.sees_identifiers and phones != {None}:
        problems.append(f"{who}'s API call list has phones: {sorted(map(str, phones))[:4]}")
    own = world.at(*viewer.own_tags)[0].m1
    slug = own.wave.instruments.first().slug
    before = db_snapshot()
    saved = client.put(
        f"/api/v1/assignments/{own.pk}/responses/{slug}/draft/",
        {"client_id": str(uuid.uuid4()), "answers": {}},
        content_type="application/json",
        **headers,
    )
    if viewer.sees_identifiers and saved.status_code != 200:
        problems.append(f"control: {who} cannot save a draft of an own survey: {saved.status_code}")
    if not viewer.sees_identifiers and (
        saved.status_code != 403 or snapshot_diff(before, db_snapshot())
    ):
        problems.append(f"{who} saved a draft of their study's survey: {saved.status_code}")
    assert calls >= 10, calls
    assert not problems, "\n".join(problems)


# --- 7. A participant's session ---------------------------------------------------------------


def test_a_participant_reaches_only_their_own_surveys(world):
    a1 = world.people["A1"]
    others = [p for tag, p in world.people.items() if tag != "A1"]
    markers = [value for p in others for value in (p.code, *p.identifiers, *p.texts)]
    phone = Client()
    assert phone.get(f"/p/{a1.token}").status_code == 302
    problems: list[str] = []
    routes = [
        *routes_of(participant_urls.urlpatterns, "p/"),
        *API_ROUTES(),
    ]

    def rows(model):
        if model is Assignment:
            return [p.m1 for p in others] + [p.baseline for p in others]
        if model is DiaryEntry:
            return [p.diary for p in others]
        if model is Study:
            return [world.study, world.faraway]
        return []

    body = _api_body(viewer_of(world, "coordinator_a"))
    tried = 0
    for route in routes:
        if any(param in CAPABILITY_PARAMS for param in route.params):
            continue
        pairs = _id_values(route, rows)
        if route.params and pairs is None:
            problems.append(f"{route.route}: parameters {route.params} not understood")
            continue
        targets = [(route.url(**values), obj) for values, obj in pairs or []]
        if not route.params:
            targets = [(route.url(), None)]
        before = db_snapshot()
        for url, obj in targets:
            for method in ("get", "post", "put"):
                if not obj and method != "get":
                    continue  # pages without ids: looked at, not posted to (sign-out, etc.)
                tried += 1
                kwargs = {}
                if method != "get":
                    kwargs = {"data": body}
                    if route.route.startswith("api/"):
                        kwargs["content_type"] = "application/json"
                response = fetch(problems, phone, method, url, **kwargs)
                leaks(problems, "participant A1", method.upper(), url, response, markers)
                if obj is not None and response is not None and response.status_code < 400:
                    problems.append(
                        f"participant A1: {method.upper()} {url} (another participant's) → "
                        f"{response.status_code}"
                    )
        changed = snapshot_diff(before, db_snapshot())
        if changed:
            problems.append(f"participant A1: {[u for u, _ in targets]} changed {changed}")
    # The control: their own survey opens, and their own draft is saved by the phone's API.
    slug = a1.m1.wave.instruments.first().slug
    own = phone.get(f"/p/s/{a1.m1.pk}/{slug}/")
    assert own.status_code == 200, own.status_code
    saved = phone.put(
        f"/api/v1/participant/assignments/{a1.m1.pk}/responses/{slug}/draft/",
        {"client_id": str(uuid.uuid4()), "answers": {}},
        content_type="application/json",
    )
    assert saved.status_code == 200, saved.content
    assert tried >= 10, tried
    assert not problems, "\n".join(problems)


# --- 8. The researcher: the same pages, no identifier anywhere -----------------------------------


DESIGN_ROWS_PER_STUDY = 3


def _all_rows(model):
    """Every row of participants' data; of the study design (the same page for 95 questions),
    the first few of each study."""
    scope = SCOPE.get(model_key(model), Scope())
    if scope.site or not scope.study:
        return list(model.objects.order_by("pk"))
    rows = []
    for study in Study.objects.order_by("pk"):
        rows += list(
            model.objects.filter(_in(scope.study, [study])).order_by("pk")[:DESIGN_ROWS_PER_STUDY]
        )
    return rows


def test_a_researcher_sees_no_identifier_anywhere(world):
    client = Client()
    client.force_login(world.researcher)
    identifiers = world.identifiers("A", "B", "F")
    problems: list[str] = []
    pages = ok = 0
    # First the PI edits contact details in the admin, so that the objects' histories (the
    # admin's log of changes) have entries too.
    pi, root = world_and_clients(world, viewer_of(world, "pi"))
    for person in world.at("A1", "B1"):
        edited = f"Editednote-{person.tag}-By-The-PI"
        data = change_post(root, world, person.participant, problems) or {}
        data |= {"code": [person.code], "contact-0-locator_notes": [edited]}
        pi.post(change_url(person.participant), data)
        contact = ParticipantContact.objects.get(participant=person.participant)
        assert contact.locator_notes == edited, "the PI's edit was not saved"
        assert LogEntry.objects.filter(object_id=str(person.participant.pk)).exists()
        identifiers.append(edited)

    def look(method, url, **kwargs):
        nonlocal pages, ok
        pages += 1
        response = fetch(problems, client, method, url, **kwargs)
        if response is not None and response.status_code == 200:
            ok += 1
        leaks(problems, "researcher", method.upper(), url, response, identifiers,
              case_insensitive=True)  # fmt: skip
        return response

    for route in admin_routes():
        if route.name in ADMIN_SKIP:
            continue
        pairs = _id_values(route, _all_rows)
        if pairs is not None and pairs:
            for values, _obj in pairs:
                look("get", route.url(**values))
            continue
        for values in _plain_values(route) or []:
            look("get", route.url(**values))
            if route.name and route.name.endswith("_changelist"):
                model_admin = route.model_admin
                if model_admin and model_admin.search_fields:
                    look("get", route.url(**values) + "?q=Firstname")
    for route in API_ROUTES():
        pairs = _id_values(route, _all_rows) if route.params else [({}, None)]
        for values, _obj in pairs or []:
            for method in _methods(route):
                kwargs = {}
                if method != "get":
                    kwargs = {
                        "data": {"client_id": str(uuid.uuid4()), "answers": {}},
                        "content_type": "application/json",
                    }
                look(method, route.url(**values), **kwargs)
    # The control: the researcher does see the participants' pages (pseudonymous codes), so an
    # empty page cannot pass for a clean one.
    participants = client.get(reverse("admin:surveys_participant_changelist")).text
    for person in world.at("A", "B"):
        if person.code not in participants:
            problems.append(f"control: the researcher's participant list lacks {person.code}")
    timeline = client.get(
        reverse("admin:surveys_participant_timeline", args=[world.people["B1"].participant.pk])
    )
    if timeline.status_code != 200 or world.people["B1"].code not in timeline.text:
        problems.append("control: the researcher cannot open a timeline")
    # ...and the same search finds the identifiers on a PI's page.
    pi = Client()
    pi.force_login(world.pi)
    page = pi.get(change_url(world.people["B1"].participant)).text
    if not found(page, world.identifiers("B1"), case_insensitive=True):
        problems.append("control: the identifier search finds nothing on the PI's page")
    assert pages >= 300 and ok >= 100, (pages, ok)
    assert not problems, "\n".join(problems)


def test_a_researcher_cannot_open_identifying_pages_or_change_anything(world):
    client = Client()
    client.force_login(world.researcher)
    a1 = world.people["A1"]
    forbidden = [
        reverse("admin:surveys_participant_add"),
        reverse("admin:surveys_consent_changelist"),
        reverse("admin:surveys_consent_change", args=[a1.consent.pk]),
        reverse("admin:surveys_consent_print", args=[a1.consent.pk]),
        reverse("admin:surveys_participant_import"),
        reverse("admin:surveys_participant_import_confirm"),
        reverse("admin:surveys_participant_import_template"),
        reverse("admin:surveys_safetyalert_changelist"),
        reverse("admin:surveys_safetyalert_change", args=[a1.alert.pk]),
        reverse("admin:surveys_message_changelist"),
        reverse("admin:surveys_auditevent_changelist"),
        reverse("admin:surveys_staffrole_changelist"),
        reverse("admin:auth_user_changelist"),
    ]
    # Every add page but the API token's (each staff member makes their own key).
    for model in admin.site._registry:
        if model is not StaffApiToken:
            forbidden.append(reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_add"))
    problems = [
        f"researcher: GET {url} → {status}"
        for url in forbidden
        if (status := client.get(url).status_code) != 403
    ]
    # The participant's page opens, without the contact inline and the contact log.
    page = client.get(change_url(a1.participant))
    assert page.status_code == 200
    for text in ("contact-0-", "contact_attempts-", "Contact attempts", "Consents"):
        if text in page.text:
            problems.append(f"researcher: the participant page has {text!r}")
    # Nothing changes, whatever they post to any object's change or delete page.
    root = Client()
    root.force_login(world.superuser)
    whole_study = viewer_of(world, "pi")  # the rows a researcher sees: the whole study
    posts = []
    for model in admin.site._registry:
        for obj in own_rows(model, whole_study)[:1]:
            data = change_post(root, world, obj, problems)
            if data is not None:
                posts.append((change_url(obj), data))
            opts = obj._meta
            posts.append(
                (
                    reverse(f"admin:{opts.app_label}_{opts.model_name}_delete", args=[obj.pk]),
                    {"post": "yes"},
                )
            )
    before = db_snapshot()
    for url, data in posts:
        fetch(problems, client, "post", url, data=data)
    changed = snapshot_diff(before, db_snapshot())
    if changed:
        problems.append(f"researcher's POSTs changed {changed}")
    assert len(posts) >= 20
    assert not problems, "\n".join(problems)


# --- 9. The principal investigator: both sites, one assertion per page family --------------------


def test_a_pi_sees_both_sites_in_every_page_family(world):
    client = Client()
    client.force_login(world.pi)
    a1, b1 = world.people["A1"], world.people["B1"]
    problems = []

    def shows(url, *texts, **kwargs):
        response = client.get(url, **kwargs)
        body = body_of(response)
        missing = [t for t in texts if t not in body]
        if response.status_code != 200 or missing:
            problems.append(f"PI: GET {url} → {response.status_code}, missing {missing}")

    # Model pages: every site-scoped changelist lists both sites' rows.
    for model in admin.site._registry:
        if SCOPE[model_key(model)].site and model not in (StaffRole, Site):
            opts = model._meta
            links = [
                change_url(row)
                for tag in ("A1", "B1")
                for row in model.objects.filter(
                    **{f"{SCOPE[model_key(model)].site}": world.people[tag].participant.site}
                )[:1]
            ]
            shows(reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"), *links)
    shows(change_url(b1.participant), b1.identifiers[0])  # contact details of site B
    # Custom pages.
    shows(reverse("admin:surveys_participant_timeline", args=[b1.participant.pk]), b1.code)
    shows(reverse("admin:surveys_consent_print", args=[b1.consent.pk]), b1.code)
    shows(reverse("admin:surveys_assignment_call_list"), a1.code, b1.code, a1.phone, b1.phone)
    shows(reverse("admin:surveys_study_retention", args=[world.study.pk]), "NYC", "LDN")
    shows(reverse("admin:surveys_diaryentry_export", args=[world.study.pk]), a1.pid, b1.pid)
    # The API, by session and by key.
    for headers in ({}, {"HTTP_AUTHORIZATION": f"Bearer {world.tokens[world.pi.username]}"}):
        shows("/api/v1/call-list/", a1.code, b1.code, b1.phone, **headers)
    # An action on site B's rows acts.
    before = db_snapshot()
    client.post(
        reverse("admin:surveys_participant_changelist"),
        {"action": "revoke_links", "_selected_action": [str(b1.participant.pk)], "index": "0"},
    )
    if not snapshot_diff(before, db_snapshot()):
        problems.append("PI: revoking site B's links changed nothing")
    assert not problems, "\n".join(problems)

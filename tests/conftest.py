import uuid
from datetime import time

import pytest

from recovery.services import study_create_from_template
from surveys.models import StaffRole, Study
from surveys.services import participant_enrol, staff_role_assign
from tests.factories import ParticipantFactory, UserFactory

TEST_SITES = [
    ("NYC", "New York site", "America/New_York"),
    ("LDN", "London site", "Europe/London"),
]


@pytest.fixture(autouse=True)
def fresh_cache_namespace(settings):
    """Each test counts attempts (rate limits) in its own cache namespace, also on Redis."""
    caches = {name: dict(config) for name, config in settings.CACHES.items()}
    for config in caches.values():
        config["KEY_PREFIX"] = f"test-{uuid.uuid4().hex}"
    settings.CACHES = caches


@pytest.fixture(autouse=True)
def private_export_root(settings, tmp_path_factory):
    """Background exports write their files to a folder of each test's own, never var/."""
    # Not made yet: the code that writes the first file makes it (private).
    settings.EXPORT_ROOT = tmp_path_factory.mktemp("exports") / "private"
    return settings.EXPORT_ROOT


@pytest.fixture
def call_list_page_size(settings):
    """Three rows a page on the admin's call list, so that a handful of rows makes pages."""
    settings.CALL_LIST_PAGE_SIZE = 3
    return settings.CALL_LIST_PAGE_SIZE


@pytest.fixture
def study(db):
    """A study made from the built-in template: battery instruments and five waves."""
    return study_create_from_template(slug="trial", name="Trial study", sites=TEST_SITES)


@pytest.fixture
def site_a(study):
    return study.sites.get(code="NYC")


@pytest.fixture
def site_b(study):
    return study.sites.get(code="LDN")


@pytest.fixture
def no_quiet_hours(study):
    """The study without quiet hours, for tests that send at the real clock: the dispatcher
    holds a message back until the quiet hours end on the participant's clock, so these tests
    would otherwise fail whenever the suite runs at night in New York. (The quiet hours at
    sending time are tested with clocks of their own: tests/surveys/test_dispatch.py.)"""
    Study.objects.filter(pk=study.pk).update(quiet_hours_start=time(0), quiet_hours_end=time(0))


@pytest.fixture
def enrol():
    def _enrol(*, site, contact=None, consent=None, now=None, **fields):
        fields.setdefault("study", site.study)
        participant = ParticipantFactory.build(site=site, **fields)
        return participant_enrol(participant=participant, contact=contact, consent=consent, now=now)

    return _enrol


@pytest.fixture
def staff_user(db):
    def _make(*, study, role, sites=(), username=None):
        user = UserFactory(username=username or f"{role}-user")
        staff_role_assign(user=user, study=study, role=role, sites=sites)
        return user

    return _make


@pytest.fixture
def coordinator_a(staff_user, study, site_a):
    return staff_user(study=study, role=StaffRole.Role.COORDINATOR, sites=[site_a])


@pytest.fixture
def researcher(staff_user, study):
    return staff_user(study=study, role=StaffRole.Role.RESEARCHER)


@pytest.fixture(
    params=[
        pytest.param("test", id="in-the-tests-transaction"),
        pytest.param("own", id="own-transaction", marks=pytest.mark.django_db(transaction=True)),
    ]
)
def both_transactions(request):
    """Run the test inside the test's transaction (the submit's is then a savepoint) and with
    real transactions of its own (``transaction=True``): on PostgreSQL its BEGIN and COMMIT
    then go with its statements (``surveys.inline_transaction``)."""
    return request.param

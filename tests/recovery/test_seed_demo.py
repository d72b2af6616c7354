import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from surveys.models import Participant, Response, Study


def test_seed_demo_creates_a_study_with_waves_sites_and_participants(db, capsys):
    call_command("seed_demo", "--participants", "40", "--seed", "2", "--effect", "-0.2")
    out = capsys.readouterr().out
    study = Study.objects.get(slug="demo")
    assert list(study.waves.filter(is_active=True).values_list("slug", flat=True)) == [
        "baseline",
        "m1",
        "m3",
        "m6",
        "m12",
    ]
    assert study.sites.count() == 3
    assert Participant.objects.filter(study=study).count() == 40
    assert Response.objects.filter(assignment__participant__study=study).exists()
    assert study.synthetic_params["effect"] == -0.2
    assert "40 participants" in out
    assert "-0.200" in out


def test_seed_demo_refuses_to_overwrite_without_replace_and_skips_with_if_missing(db, capsys):
    call_command("seed_demo", "--participants", "10")
    with pytest.raises(CommandError, match="--replace"):
        call_command("seed_demo", "--participants", "10")
    call_command("seed_demo", "--participants", "25", "--if-missing")
    assert Participant.objects.filter(study__slug="demo").count() == 10
    call_command("seed_demo", "--participants", "25", "--replace")
    assert Participant.objects.filter(study__slug="demo").count() == 25
    assert Study.objects.filter(slug="demo").count() == 1


@pytest.mark.parametrize(
    "args, message",
    [
        (["--participants", "0"], "at least 1"),
        (["--effect", "2"], "between -1 and 1"),
    ],
)
def test_seed_demo_rejects_bad_arguments(db, args, message):
    with pytest.raises(CommandError, match=message):
        call_command("seed_demo", *args)
    assert not Study.objects.exists()


def _stored():
    return sorted(
        (code, str(enrolled), wave, status, str(answers))
        for code, enrolled, wave, status, answers in Response.objects.filter(
            assignment__participant__study__slug="demo"
        ).values_list(
            "assignment__participant__code",
            "assignment__participant__enrolled_on",
            "assignment__wave__slug",
            "assignment__status",
            "answers",
        )
    )


def test_same_seed_and_date_give_the_same_stored_data_whatever_the_clock(db, monkeypatch):
    from datetime import UTC, datetime

    from django.utils import timezone

    call_command("seed_demo", "--participants", "30", "--seed", "9", "--as-of", "2026-03-01")
    first = _stored()
    # A day later on the wall clock, the same seed and date must store exactly the same rows.
    monkeypatch.setattr(timezone, "now", lambda: datetime(2026, 11, 30, 23, tzinfo=UTC))
    call_command(
        "seed_demo", "--participants", "30", "--seed", "9", "--as-of", "2026-03-01", "--replace"
    )
    assert _stored() == first
    latest = Participant.objects.filter(study__slug="demo").latest("enrolled_on")
    assert str(latest.enrolled_on) <= "2026-03-01"


def test_demo_login_prints_working_staff_logins_for_each_role(db, client, capsys):
    from surveys.models import Consent

    call_command("seed_demo", "--participants", "5")
    assert Consent.objects.filter(participant__study__slug="demo").count() == 5
    call_command("demo_login")
    out = capsys.readouterr().out
    passwords = {
        line.split()[0]: line.split("password ")[1].split()[0]
        for line in out.splitlines()
        if " password " in line
    }
    assert set(passwords) == {"demo", "demo-coordinator", "demo-researcher"}
    for username, password in passwords.items():
        assert client.login(username=username, password=password), username
        assert client.get("/admin/").status_code == 200
        assert client.get("/admin/surveys/participant/").status_code == 200
    client.login(username="demo-coordinator", password=passwords["demo-coordinator"])
    listed = client.get("/admin/surveys/participant/").text
    codes = Participant.objects.filter(study__slug="demo").values_list("code", "site__code")
    assert all((code in listed) == (site == "CHI") for code, site in codes), codes
    client.login(username="demo", password=passwords["demo"])
    link = next(line.rsplit(": ", 1)[1] for line in out.splitlines() if "personal link" in line)
    # On the address the settings give (8000 unless DEMO_PORT or SITE_URL is set in the shell).
    assert link.startswith(f"{settings.SITE_URL}/p/")
    client.logout()
    assert client.get(link.removeprefix(settings.SITE_URL), follow=True).status_code == 200


def test_seeded_study_ids_are_numbered_as_enrolment_numbers_them_and_enrolment_carries_on(db):
    from datetime import date

    from surveys.services import participant_enrol

    call_command("seed_demo", "--participants", "30", "--seed", "4")
    study = Study.objects.get(slug="demo")
    for site in study.sites.all():
        codes = sorted(Participant.objects.filter(site=site).values_list("code", flat=True))
        # CHI-0001, CHI-0002, …: four digits, each site from 1, the site's counter moved on.
        assert codes == [f"{site.code}-{n:04d}" for n in range(1, len(codes) + 1)]
        assert site.last_number == len(codes)
    chicago = study.sites.get(code="CHI")
    seeded = chicago.participants.count()
    enrolled = participant_enrol(
        participant=Participant(
            study=study, site=chicago, enrolled_on=date(2026, 3, 1), timezone=chicago.timezone
        )
    )
    assert enrolled.code == f"CHI-{seeded + 1:04d}"


def test_seed_demo_prints_a_personal_link_on_the_demo_port(db, client, settings, capsys):
    """With DEMO_PORT=8123 the settings make SITE_URL http://127.0.0.1:8123
    (tests/test_settings.py); the link printed must be on that port, not 8000, and open."""
    settings.SITE_URL = "http://127.0.0.1:8123"
    call_command("seed_demo", "--participants", "5")
    out = capsys.readouterr().out
    link = next(line.rsplit(": ", 1)[1] for line in out.splitlines() if "personal link" in line)
    assert link.startswith("http://127.0.0.1:8123/p/"), link
    assert client.get(link.removeprefix("http://127.0.0.1:8123"), follow=True).status_code == 200

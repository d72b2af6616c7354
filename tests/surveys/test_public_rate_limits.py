"""Rate limits on what anyone can reach (issue 9): every public path per address, and made-up
personal links. The per-test cache namespace (tests/conftest.py) starts each count at zero."""

from surveys.links import participant_link_create

NEW_LINK = "/p/new-link"


def test_a_flood_from_one_address_gets_429_and_other_addresses_do_not(client, settings, db):
    settings.PARTICIPANT_REQUESTS_PER_MINUTE = 5
    for _ in range(5):
        assert client.get(NEW_LINK, REMOTE_ADDR="198.51.100.7").status_code == 200
    refused = client.get(NEW_LINK, REMOTE_ADDR="198.51.100.7")
    assert refused.status_code == 429
    assert refused["Retry-After"] == "60"
    assert "Please wait a minute" in refused.text
    assert client.get(NEW_LINK, REMOTE_ADDR="198.51.100.8").status_code == 200
    # the participant API answers in JSON
    api = client.put(
        "/api/v1/participant/assignments/1/responses/followup/draft/",
        {},
        content_type="application/json",
        REMOTE_ADDR="198.51.100.7",
    )
    assert api.status_code == 429 and "Too many requests" in api.json()["detail"]
    # staff pages are not public paths (their sign-in has its own lockout)
    assert client.get("/admin/login/", REMOTE_ADDR="198.51.100.7").status_code == 200


def test_the_limit_can_be_turned_off(client, settings, db):
    settings.PARTICIPANT_REQUESTS_PER_MINUTE = 0
    for _ in range(20):
        assert client.get(NEW_LINK, REMOTE_ADDR="198.51.100.7").status_code == 200


def test_an_address_trying_made_up_links_can_open_no_link_for_the_hour(
    client, settings, site_a, enrol
):
    settings.PARTICIPANT_BAD_LINKS_PER_HOUR = 3
    _, token = participant_link_create(participant=enrol(site=site_a))
    guesser, other = {"REMOTE_ADDR": "203.0.113.5"}, {"REMOTE_ADDR": "203.0.113.6"}
    for n in range(4):
        assert client.get(f"/p/made-up-{n}", **guesser).status_code == 404
    refused = client.get(f"/p/{token}", **guesser)
    assert refused.status_code == 429  # even a real link: a right guess looks like the rest
    assert client.get(f"/p/{token}", **other).status_code == 302  # the participant's own phone


def test_a_participant_opening_their_real_links_is_never_counted(client, settings, site_a, enrol):
    settings.PARTICIPANT_BAD_LINKS_PER_HOUR = 2
    participant = enrol(site=site_a)
    for _ in range(6):
        _, token = participant_link_create(participant=participant)
        assert client.get(f"/p/{token}", REMOTE_ADDR="203.0.113.5").status_code == 302

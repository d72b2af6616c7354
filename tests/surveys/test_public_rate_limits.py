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
    assert "Wait a minute, then try again." in refused.text
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


def test_made_up_links_get_429_after_the_limit_and_real_links_still_open(
    client, settings, site_a, enrol
):
    settings.PARTICIPANT_BAD_LINKS_PER_HOUR = 3
    _, token = participant_link_create(participant=enrol(site=site_a))
    guesser = {"REMOTE_ADDR": "203.0.113.5"}
    for n in range(3):
        assert client.get(f"/p/made-up-{n}", **guesser).status_code == 404
    refused = client.get("/p/made-up-4", **guesser)
    assert refused.status_code == 429 and refused["Retry-After"] == "3600"
    assert "Wait 60 minutes" in refused.text
    # someone else behind the same address opening their own link is not locked out
    assert client.get(f"/p/{token}", **guesser).status_code == 302


def test_the_bad_link_limit_can_be_turned_off(client, settings, db):
    settings.PARTICIPANT_BAD_LINKS_PER_HOUR = 0
    for n in range(10):
        assert client.get(f"/p/made-up-{n}").status_code == 404


def test_the_429_page_has_the_security_headers_of_every_page(client, settings, db):
    settings.PARTICIPANT_REQUESTS_PER_MINUTE = 1
    client.get(NEW_LINK)
    refused = client.get(NEW_LINK)
    assert refused.status_code == 429
    assert "script-src 'self'" in refused["Content-Security-Policy"]
    assert refused["X-Frame-Options"] == "DENY"


def test_with_the_cache_down_participants_still_get_their_pages(client, settings, db, caplog):
    settings.CACHES = {
        "default": {
            "BACKEND": "recovery.cache.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",  # nothing listens there
        }
    }
    settings.PARTICIPANT_REQUESTS_PER_MINUTE = 1
    for _ in range(3):
        assert client.get(NEW_LINK).status_code == 200
    assert client.get("/p/made-up").status_code == 404
    assert "not counted: the cache is unreachable" in caplog.text


def test_the_sms_provider_callbacks_are_not_limited_per_address(client, settings, db):
    settings.PARTICIPANT_REQUESTS_PER_MINUTE = 1
    for _ in range(3):  # refused for their signature, never for their number
        assert client.post("/hooks/sms/twilio", {}).status_code != 429

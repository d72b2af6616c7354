"""Every page carries a Content-Security-Policy that allows scripts only from this site's own
files, and no template of ours runs inline script."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)(?![^>]*application/(?:ld\+)?json)[^>]*>", re.I)


def _directives(header: str) -> dict[str, list[str]]:
    found = {}
    for part in header.split(";"):
        words = part.split()
        if words:
            found[words[0]] = words[1:]
    return found


@pytest.mark.parametrize(
    "method, url",
    [
        ("get", "/admin/login/"),
        ("post", "/p/sign-out"),
        ("get", "/p/unlock"),
        ("get", "/api/v1/docs/"),
        ("get", "/api/v1/schema/"),
        ("get", "/healthz"),
    ],
)
def test_every_page_sends_a_policy_without_inline_script(client, db, method, url):
    reply = getattr(client, method)(url)
    assert reply.status_code in (200, 302), url
    policy = _directives(reply["Content-Security-Policy"])
    assert policy["script-src"] == ["'self'"]
    assert policy["default-src"] == ["'self'"]
    assert policy["object-src"] == ["'none'"] and policy["frame-ancestors"] == ["'none'"]
    assert policy["base-uri"] == ["'none'"] and policy["form-action"] == ["'self'"]


def test_no_template_of_ours_has_an_inline_script():
    offenders = []
    for folder in (ROOT / "templates", ROOT / "surveys", ROOT / "recovery", ROOT / "api"):
        for path in folder.rglob("*.html"):
            for match in INLINE_SCRIPT.finditer(path.read_text(encoding="utf-8")):
                offenders.append(f"{path.relative_to(ROOT)}: {match.group(0)}")
    assert not offenders, "\n".join(offenders)


def test_the_api_docs_start_up_script_is_a_file(client, db):
    page = client.get("/api/v1/docs/").content.decode()
    assert not INLINE_SCRIPT.search(page)
    script = client.get("/api/v1/docs/?script")
    assert script.status_code == 200 and "SwaggerUIBundle" in script.content.decode()


def test_the_api_docs_page_does_not_echo_its_query_string(client, db):
    page = client.get("/api/v1/docs/?study_id=NYC-0042&lang=en").content.decode()
    assert "NYC-0042" not in page
    assert "/api/v1/docs/?" in page and "script" in page

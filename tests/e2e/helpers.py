"""What the browser tests do on a phone, shared by the modules."""

import contextlib
from zoneinfo import ZoneInfo

from django.utils import timezone

from surveys.links import participant_link_create


def open_link(page, live_server, participant):
    _, token = participant_link_create(participant=participant)
    page.goto(f"{live_server.url}/p/{token}")


def answer_screen(page, choices: dict):
    """Answer every shown question of the current screen: as ``choices`` says, else the first
    option, 0, or the middle of a slider."""
    variables = page.locator(".screen:not([hidden]) .q").evaluate_all(
        "nodes => nodes.map(n => n.dataset.variable)"
    )
    for variable in variables:
        q = page.locator(f"#q-{variable}")
        if not q.is_visible():  # hidden by an answer just given
            continue
        kind = q.get_attribute("data-kind")
        wanted = choices.get(variable)
        if kind in ("yesno", "single"):
            code = wanted or q.locator("input").first.get_attribute("value")
            q.locator(f"input[value='{code}']").check()
        elif kind == "multiple":
            for code in wanted or [q.locator("input").first.get_attribute("value")]:
                q.locator(f"input[value='{code}']").check()
        elif kind == "slider":
            q.locator("input[type=range]").focus()
            page.keyboard.press("ArrowRight")
        elif kind in ("integer", "decimal"):
            q.locator("input").fill(str(wanted if wanted is not None else 0))
        elif kind == "date":
            q.locator("input").fill("2026-01-01")
        else:
            q.locator("input, textarea").fill(str(wanted or "ok"))


def answer_to_review(page, choices: dict, *, screens: int = 120) -> list[str]:
    """Answer screen after screen (``answer_screen``) until the review shows; the variables of
    the questions shown on the way, in order."""
    seen: list[str] = []
    for _ in range(screens):
        if page.locator("#review").is_visible():
            break
        seen += page.locator(".screen:not([hidden]) .q:not([hidden])").evaluate_all(
            "nodes => nodes.map(n => n.dataset.variable)"
        )
        answer_screen(page, choices)
        page.locator("#next").click()
    assert page.locator("#review").is_visible()
    return seen


def settle(context) -> None:
    """Let the context's pages finish what they sent (a draft saved on "Next", say) before it
    closes: a request still running on the live server when the test's database is flushed
    holds locks the flush waits for, and PostgreSQL ends one of the two as a deadlock."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    for page in context.pages:
        with contextlib.suppress(PlaywrightTimeout):  # one that never settles closes anyway
            page.wait_for_load_state("networkidle", timeout=5000)


def new_york_today():
    """Today in New York, the test participants' time zone: their windows are laid out on their
    own calendar, which is a day behind the server's (UTC) from 00:00 to 05:00 UTC."""
    return timezone.localdate(timezone=ZoneInfo("America/New_York"))


def controlled_by_service_worker(page) -> None:
    """Wait until the page's service worker is active and controls the page."""
    page.evaluate("navigator.serviceWorker.ready")
    page.reload()
    page.wait_for_function("navigator.serviceWorker.controller !== null")


# The pages the service worker keeps for offline use (its static files left out).
KEPT_PAGES = """async () => {
    const kept = [];
    for (const key of await caches.keys()) {
        const cache = await caches.open(key);
        for (const request of await cache.keys()) {
            const path = new URL(request.url).pathname;
            if (!path.startsWith('/static/')) kept.push(path);
        }
    }
    return kept;
}"""

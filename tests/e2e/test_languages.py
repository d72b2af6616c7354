"""The participant's language on a phone: a whole survey in Spanish, switching language, and
Persian laid out right to left. Screenshots of both in docs/."""

from playwright.sync_api import expect

from surveys.models import Participant, Response
from tests.e2e.helpers import answer_screen, open_link
from tests.e2e.test_survey import DOCS


def test_a_whole_survey_in_spanish(phone, live_server, due_participant):
    Participant.objects.filter(pk=due_participant.pk).update(language="es")
    page = phone()
    open_link(page, live_server, due_participant)
    expect(page.get_by_role("heading", level=1)).to_have_text("Sus encuestas")
    expect(page.locator(".card strong").first).to_have_text("1 mes")  # the wave's own name
    page.get_by_role("link", name="Empezar").first.click()
    expect(page.locator("#progress-text")).to_contain_text("Pregunta 1 de")
    # The battery's own wording is Spanish too.
    expect(page.locator("#q-attended_any legend")).to_contain_text("reunión de ayuda mutua")
    # A question left unanswered: the error is in Spanish.
    page.get_by_role("button", name="Siguiente").click()
    expect(page.locator(".screen:not([hidden]) .error:not([hidden])").first).not_to_be_empty()
    error = page.locator(".screen:not([hidden]) .error:not([hidden])").first.inner_text()
    assert "answer" not in error.lower()
    DOCS.mkdir(exist_ok=True)
    page.screenshot(path=str(DOCS / "participant-survey-es.png"))
    for _ in range(120):
        if page.locator("#review").is_visible():
            break
        answer_screen(page, {"attended_any": "0", "overdose": "0"})
        page.get_by_role("button", name="Siguiente").click()
    page.get_by_role("button", name="Enviar mis respuestas").click()
    page.wait_for_url("**/done")
    expect(page.get_by_role("heading", level=1)).to_have_text(
        "Gracias — sus respuestas se enviaron"
    )
    assert Response.objects.get().status == Response.Status.SUBMITTED


def test_the_participant_switches_language_and_it_stays(phone, live_server, due_participant):
    page = phone()
    open_link(page, live_server, due_participant)
    expect(page.get_by_role("heading", level=1)).to_have_text("Your surveys")
    page.get_by_label("Language").select_option("es")
    page.get_by_role("button", name="Change").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Sus encuestas")
    due_participant.refresh_from_db()
    assert due_participant.language == "es"
    page.reload()
    expect(page.get_by_role("heading", level=1)).to_have_text("Sus encuestas")


def test_persian_pages_run_right_to_left(phone, live_server, due_participant):
    Participant.objects.filter(pk=due_participant.pk).update(language="fa")
    page = phone()
    open_link(page, live_server, due_participant)
    expect(page.locator("html")).to_have_attribute("dir", "rtl")
    expect(page.get_by_role("heading", level=1)).to_have_text("پرسشنامه‌های شما")
    # The card's accent bar is on its inline start: the right-hand side in Persian.
    card = page.locator(".card").first
    right = card.evaluate("el => getComputedStyle(el).borderRightWidth")
    left = card.evaluate("el => getComputedStyle(el).borderLeftWidth")
    assert right != "0px" and left == "0px"
    page.screenshot(path=str(DOCS / "participant-home-fa.png"))
    page.locator(".card a").first.click()
    expect(page.locator("#progress-text")).to_be_visible()
    # "Next" sits at the inline end: on the left of "Back" in a right-to-left page.
    answer_screen(page, {"attended_any": "0"})
    page.locator("#next").click()
    back = page.locator("#back").bounding_box()
    following = page.locator("#next").bounding_box()
    assert following["x"] < back["x"]
    page.screenshot(path=str(DOCS / "participant-survey-fa.png"))


def test_numbers_typed_in_persian_digits_are_taken(phone, live_server, due_participant):
    Participant.objects.filter(pk=due_participant.pk).update(language="fa")
    page = phone()
    open_link(page, live_server, due_participant)
    page.locator(".card a").first.click()
    expect(page.locator("#progress-text")).to_be_visible()
    # ۶ and ٣ as a Persian or Arabic keyboard types them; before, the number field emptied
    # itself and the page asked for an answer.
    typed = {"attended_any": "1", "fellowships": ["1"], "overdose": "0"}
    typed |= {"mtg_na_inperson": "\u06f6", "days_alcohol": "\u0663"}
    typed |= {"days_cannabis": "2."}  # a point with nothing after it, as the server takes it
    for _ in range(120):
        if page.locator("#review").is_visible():
            break
        answer_screen(page, typed)
        page.locator("#next").click()
        expect(page.locator(".screen:not([hidden]) .error:not([hidden])")).to_have_count(0)
    expect(page.locator("#review")).to_be_visible()
    page.locator("#send").click()
    page.wait_for_url("**/done")
    answers = Response.objects.get().answers
    assert answers["mtg_na_inperson"] == 6 and answers["days_alcohol"] == 3
    assert answers["days_cannabis"] == 2


def test_a_comma_in_a_whole_number_is_explained_on_the_phone(phone, live_server, due_participant):
    Participant.objects.filter(pk=due_participant.pk).update(language="es")
    page = phone()
    open_link(page, live_server, due_participant)
    page.get_by_role("link", name="Empezar").first.click()
    # The survey's script has started before any answer is given (as the tests above do):
    # answers given to a page still loading were lost, and "Next" then stopped on question 1.
    expect(page.locator("#progress-text")).to_be_visible()
    choices = {"attended_any": "1", "fellowships": ["1"], "overdose": "0"}
    for _ in range(120):
        if page.locator("#q-mtg_na_inperson").is_visible():
            break
        answer_screen(page, choices)
        page.locator("#next").click()
        expect(page.locator(".screen:not([hidden]) .error:not([hidden])")).to_have_count(0)
    # "1,000" may be a thousand or one: the phone says to write it without a comma.
    page.locator("#q-mtg_na_inperson input").fill("1,000")
    page.locator("#next").click()
    expect(page.locator("#err-mtg_na_inperson")).to_have_text(
        "Escriba un número entero sin coma, por ejemplo 1500."
    )
    page.locator("#q-mtg_na_inperson input").fill("6")
    page.locator("#next").click()
    expect(page.locator("#err-mtg_na_inperson")).to_be_hidden()

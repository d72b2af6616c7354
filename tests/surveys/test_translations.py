import ast
import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone, translation

from surveys.links import participant_link_create

LOCALE_DIR = Path(settings.BASE_DIR) / "locale"
LANGUAGES = ["es", "fa"]


def read_po(path: Path) -> list[dict]:
    """The entries of a .po file: msgid, msgid_plural, msgstr / msgstr[n], and flags.

    A small reader for the subset of the format that makemessages writes: comments,
    keywords followed by a quoted string, and continuation lines of quoted strings.
    """
    entries, entry, key = [], {}, None

    def finish():
        if "msgid" in entry:
            entries.append(entry)

    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#,"):
            if "msgid" in entry:
                finish()
                entry = {}
            entry.setdefault("flags", set()).update(f.strip() for f in line[2:].split(","))
            continue
        if line.startswith("#"):
            if "msgid" in entry:
                finish()
                entry = {}
            continue
        if line.startswith('"'):
            entry[key] += ast.literal_eval(line)
            continue
        key, _, value = line.partition(" ")
        if key == "msgid" and "msgid" in entry:
            finish()
            entry = {}
        entry[key] = ast.literal_eval(value)
    finish()
    return [e for e in entries if e["msgid"]]  # the header has an empty msgid


def po_path(language: str) -> Path:
    return LOCALE_DIR / language / "LC_MESSAGES" / "django.po"


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_catalogs_are_compiled_next_to_the_po_files(language):
    assert po_path(language).is_file()
    assert po_path(language).with_suffix(".mo").is_file()


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_compiled_catalog_matches_the_po_file(language):
    entries = read_po(po_path(language))
    assert entries
    checked = 0
    with translation.override(language):
        for entry in entries:
            if "msgid_plural" in entry or "fuzzy" in entry.get("flags", ()):
                continue
            if not entry.get("msgstr"):
                continue
            assert translation.gettext(entry["msgid"]) == entry["msgstr"], (
                f"{language}: {entry['msgid']!r} is not compiled; run compilemessages"
            )
            checked += 1
    assert checked


@pytest.mark.parametrize("language", LANGUAGES)
def test_plural_messages_are_compiled_too(language):
    with translation.override(language):
        one = translation.ngettext(
            "One answer needs your attention", "%(n)s answers need your attention", 1
        )
        many = translation.ngettext(
            "One answer needs your attention", "%(n)s answers need your attention", 3
        )
    assert one != "One answer needs your attention"
    assert "%(n)s" in many and "answers need" not in many


def test_every_spanish_message_is_translated():
    untranslated = []
    for entry in read_po(po_path("es")):
        if "msgid_plural" in entry:
            forms = [v for k, v in entry.items() if k.startswith("msgstr[")]
        else:
            forms = [entry.get("msgstr", "")]
        if not forms or not all(forms) or "fuzzy" in entry.get("flags", ()):
            untranslated.append(entry["msgid"])
    assert untranslated == []


@pytest.mark.parametrize("language", LANGUAGES)
def test_placeholders_survive_translation(language):
    for entry in read_po(po_path(language)):
        translations = [v for k, v in entry.items() if k.startswith("msgstr") and v]
        for placeholder in ("%(n)s", "%(total)s", "%(min)s", "%(max)s", "%(value)s"):
            for text in translations:
                if placeholder in entry["msgid"] and "msgid_plural" not in entry:
                    assert placeholder in text, (language, entry["msgid"], text)
        for placeholder in ("%(name)s", "%(day)s", "%(done)s"):
            for text in translations:
                if placeholder in entry["msgid"]:
                    assert placeholder in text, (language, entry["msgid"], text)


@pytest.fixture
def participant_in(site_a, enrol):
    def _make(language, code):
        return enrol(
            site=site_a,
            code=code,
            language=language,
            enrolled_on=timezone.localdate() - timedelta(days=30),
        )

    return _make


def open_home(client, participant):
    _, token = participant_link_create(participant=participant)
    assert client.get(f"/p/{token}").status_code == 302
    home = client.get("/p/")
    assert home.status_code == 200
    return home.text


def test_a_spanish_speaking_participant_sees_their_surveys_in_spanish(client, participant_in):
    page = open_home(client, participant_in("es", "NYC-0201"))
    assert '<html lang="es" dir="ltr"' in page
    assert "<h1>Sus encuestas</h1>" in page
    assert "Disponibles ahora" in page
    assert "Your surveys" not in page and "Ready for you now" not in page


def test_a_persian_speaking_participant_sees_a_right_to_left_page_in_persian(
    client, participant_in
):
    page = open_home(client, participant_in("fa", "NYC-0202"))
    assert '<html lang="fa" dir="rtl"' in page
    assert "<h1>پرسشنامه\u200cهای شما</h1>" in page
    assert "Your surveys" not in page and "Ready for you now" not in page


PARTICIPANT_TEMPLATES = ("participant", "messages", "consent")
TRANSLATE_TAG = re.compile(r"""{%\s*translate\s+"([^"]+)"(?:\s+context\s+"[^"]*")?\s*%}""")
BLOCK_TAG = re.compile(
    r"{%\s*blocktranslate(?P<options>[^%]*)%}(?P<text>.*?){%\s*endblocktranslate\s*%}", re.S
)
VARIABLE = re.compile(r"{{\s*(\w+)\s*}}")


def _template_messages(text: str) -> list[str]:
    """The msgids of a template, as makemessages reads them: translate tags, and block
    translations with {{ var }} as %(var)s (a plural's singular form)."""
    found = TRANSLATE_TAG.findall(text)
    for match in BLOCK_TAG.finditer(text):
        singular = re.split(r"{%\s*plural\s*%}", match.group("text"))[0]
        if "trimmed" in match.group("options"):
            singular = " ".join(singular.split())
        found.append(VARIABLE.sub(r"%(\1)s", singular))
    return found


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_participant_template_message_is_in_the_catalog(language):
    """What a participant reads is in their language: every {% translate %} and
    {% blocktranslate %} of the participant, message and consent templates has its
    translation (the rate-limit page's had none: a Spanish or Persian speaker read it in
    English)."""
    translated = {
        e["msgid"] for e in read_po(po_path(language)) if e.get("msgstr") or e.get("msgstr[0]")
    }
    missing = {}
    for folder in PARTICIPANT_TEMPLATES:
        for path in sorted((Path(settings.BASE_DIR) / "templates" / folder).rglob("*")):
            if path.is_file():
                for text in _template_messages(path.read_text(encoding="utf-8")):
                    if text not in translated:
                        missing.setdefault(text, path.name)
    assert not missing, missing


GETTEXT_CALLS = {"_", "gettext", "gettext_lazy", "ngettext", "ngettext_lazy"}
CONTEXT_CALLS = {"pgettext", "pgettext_lazy", "npgettext", "npgettext_lazy"}


def _python_messages(source: str) -> list[str]:
    """The msgids of a module, as makemessages reads them: the literal first argument of
    gettext and its aliases (the second of pgettext, after the context)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
        position = 0 if name in GETTEXT_CALLS else 1 if name in CONTEXT_CALLS else None
        if position is None or len(node.args) <= position:
            continue
        argument = node.args[position]
        if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
            found.append(argument.value)
    return found


def test_python_messages_are_read_as_makemessages_reads_them():
    source = (
        'x = _("One")\nok = gettext_lazy("Two")\nn = ngettext("%(n)s day", "%(n)s days", 2)\n'
        'p = pgettext("month", "May")\nnot_a_message = print("Three")\nvariable = _(name)\n'
    )
    assert _python_messages(source) == ["One", "Two", "%(n)s day", "May"]


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_participant_message_of_the_python_code_is_in_the_catalog(language):
    """Validation messages, the survey page's strings and the e-mails' wording come from the
    Python code: each has its translation, as the templates' do (the staff side, admin
    modules, is English only)."""
    translated = {
        e["msgid"] for e in read_po(po_path(language)) if e.get("msgstr") or e.get("msgstr[0]")
    }
    base = Path(settings.BASE_DIR)
    missing, read = {}, 0
    for folder in ("surveys", "api", "recovery"):
        for path in sorted((base / folder).rglob("*.py")):
            if "migrations" in path.parts or "admin" in path.as_posix():
                continue
            for text in _python_messages(path.read_text(encoding="utf-8")):
                read += 1
                if text not in translated:
                    missing.setdefault(text, str(path.relative_to(base)))
    assert read > 50  # the scan found the code's messages
    assert not missing, missing


@pytest.mark.parametrize(
    ("language", "waited", "expected"),
    [
        ("es", 1, "Espere un minuto y vuelva a intentarlo."),
        ("es", 5, "Espere 5 minutos y vuelva a intentarlo."),
        ("fa", 1, "یک دقیقه صبر کنید"),
        ("fa", 5, "5 دقیقه صبر کنید"),
    ],
)
def test_the_rate_limit_page_is_in_the_participants_language(rf, language, waited, expected):
    from django.template.loader import render_to_string

    with translation.override(language):
        page = render_to_string("participant/too_many.html", {"minutes": waited}, rf.get("/p/"))
    assert expected in page
    assert "sent many requests" not in page and "Please wait" not in page

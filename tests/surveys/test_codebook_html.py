"""The codebook as one HTML page: every variable a row with its anchor, the missing codes once,
user text escaped, and only for a codebook frame."""

from datetime import date
from html.parser import HTMLParser

import pytest
from django.utils import timezone

from surveys.datasets import MISSING_CODES, codebook, dataset_long, dataset_wide
from surveys.datasets.codebook_html import codebook_html
from surveys.datasets.formats import FORMATS, write_dataset
from surveys.models import Item

HOSTILE = '<script>alert("codebook")</script> How old are you?'


class Page(HTMLParser):
    """The parts of the page a reader would look at: elements by tag, rows by id, text by cell."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.ids: list[str] = []
        self.rows: dict[str, dict[str, str]] = {}  # row id -> cell class -> text
        self._row: str | None = None
        self._cell: str | None = None
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        if "id" in attrs:
            self.ids.append(attrs["id"])
        if tag == "tr" and "id" in attrs:
            self._row = attrs["id"]
            self.rows[self._row] = {}
        elif tag == "td" and self._row:
            self._cell = (attrs.get("class") or "").split()[0]
            self.rows[self._row][self._cell] = ""

    def handle_endtag(self, tag):
        if tag == "tr":
            self._row = None
        if tag == "td":
            self._cell = None

    def handle_data(self, data):
        if self._row and self._cell:
            self.rows[self._row][self._cell] += data


@pytest.fixture
def long(study, site_a, enrol):
    """The template study's long frame, one participant, and a label someone typed badly."""
    Item.objects.filter(version__instrument__study=study, variable="age").update(
        label={"en": HOSTILE}
    )
    enrol(site=site_a, enrolled_on=date(2026, 1, 15))
    return dataset_long(study=study)


def page_of(book) -> tuple[str, Page]:
    text = codebook_html(book, title="Codebook: Trial study", missing_codes=MISSING_CODES)
    return text, Page(text)


def test_one_row_per_variable_with_its_anchor(study, long):
    book = codebook(study, long)
    text, page = page_of(book)
    assert list(page.rows) == book["name"].tolist()
    assert len(page.ids) == len(set(page.ids))  # every #anchor leads to one place
    assert 'href="#gender"' in text
    assert page.rows["gender"]["name"] == "gender"
    assert "Woman" in page.rows["gender"]["values"]
    assert page.rows["gender"]["source"] == "baseline v1"
    assert page.rows["mtg_na_inperson"]["branching"] == "[fellowships(1)] = '1'"
    assert "Codebook: Trial study" in text
    assert timezone.localdate().strftime("%Y") in text


def test_a_label_is_shown_as_text_never_run(study, long):
    text, page = page_of(codebook(study, long))
    assert "script" not in page.tags
    assert "<script>" not in text and "&lt;script&gt;" in text
    assert page.rows["age"]["label"] == HOSTILE  # the reader still sees what was typed


def test_every_missing_code_is_explained_once(study, long):
    text, page = page_of(codebook(study, long))
    for code, meaning in MISSING_CODES.items():
        assert text.count(f"<code>{code}</code>") == 1, code
        assert meaning.replace("'", "&#x27;") in text, meaning
    assert "missing-codes" in page.ids


def test_a_derived_measure_shows_its_formula(study, long):
    book = codebook(study, long).set_index("name")
    _, page = page_of(codebook(study, long))
    formula = book.loc["meetings_total", "formula"]
    assert "mtg_" in formula
    assert page.rows["meetings_total"]["formula"] == formula
    assert page.rows["meetings_total"]["source"] == "derived from followup"


def test_a_wide_codebook_is_grouped_by_wave(study, long):
    wide = dataset_wide(long)
    book = codebook(study, wide)
    _, page = page_of(book)
    assert list(page.rows) == book["name"].tolist()
    assert {"wave-baseline", "wave-m1", "wave-m12"} <= set(page.ids)
    assert page.rows["gender_baseline"]["source"] == "baseline v1"  # the wave is the heading


def test_write_dataset_writes_the_html_codebook_and_only_the_codebook(study, long, tmp_path):
    assert FORMATS["html"] == ("text/html; charset=utf-8", "html")
    out = tmp_path / "codebook.html"
    write_dataset(codebook(study, long), out, "html", study=study)
    text = out.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>") and "Trial study" in text
    assert len(Page(text).rows) == len(long.columns)
    for tag in ("<script", "<link", "src=", "@import", "url("):
        assert tag not in text.lower(), tag  # self-contained, no script
    with pytest.raises(ValueError, match="the HTML format is for the codebook"):
        write_dataset(long, tmp_path / "long.html", "html", study=study)

"""Instrument content as data: validating a set of items and saving it as a version.

Changing an instrument that already has responses makes a new version, so every stored response
keeps meaning what it meant when it was answered.
"""

from datetime import date

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Exists, OuterRef, Q

from surveys import logic
from surveys.audit import private_variables_forget
from surveys.models import Instrument, InstrumentVersion, Item, Response
from surveys.validation import SINCE_LAST_SURVEY

CHOICE_KINDS = {Item.Kind.SINGLE, Item.Kind.MULTIPLE}
NUMERIC_KINDS = {Item.Kind.INTEGER, Item.Kind.DECIMAL, Item.Kind.SLIDER}


def _iso_date(text: str) -> bool:
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return len(text) == 10


def items_validate(items: list[dict]) -> None:
    """Check a whole item list; raise one ValidationError listing every problem.

    Each error names the variable (and, for logic, the character position), keyed by the item's
    index in ``items`` so that an importer can point at the line it came from.
    """
    errors: dict[str, list[str]] = {}

    def add(index: int, message: str) -> None:
        errors.setdefault(str(index), []).append(message)

    kinds: dict[str, str] = {}
    for index, item in enumerate(items):
        variable = item.get("variable", "")
        if variable in kinds:
            add(index, f"{variable}: the variable name is used twice")
        kinds[variable] = item.get("kind", "")
        if item.get("kind") not in Item.Kind.values:
            add(index, f"{variable}: unknown kind {item.get('kind')!r}")
        try:
            Item(**{k: v for k, v in item.items() if k != "version"}).clean_fields(
                exclude=["version", "position"]
            )
        except ValidationError as exc:
            for field, messages in exc.message_dict.items():
                for message in messages:
                    add(index, f"{variable}: {field}: {message}")
        if item.get("kind") in CHOICE_KINDS:
            codes = [str(choice.get("code", "")) for choice in item.get("choices") or []]
            if not codes:
                add(index, f"{variable}: a choice item needs choices")
            if len(set(codes)) != len(codes):
                add(index, f"{variable}: choice codes repeat")
        if item.get("kind") == Item.Kind.CALC and not (item.get("calculation") or "").strip():
            add(index, f"{variable}: a calculated item needs a formula")
        if item.get("kind") in NUMERIC_KINDS:
            for bound in ("min_value", "max_value"):
                value = item.get(bound) or ""
                if value == SINCE_LAST_SURVEY and item.get("kind") != Item.Kind.SLIDER:
                    continue  # worked out per participant (a slider's ends are fixed)
                if value and not logic.is_numeric(value):
                    add(index, f"{variable}: {bound} {value!r} is not a number")
        if item.get("kind") == Item.Kind.DATE:
            for bound in ("min_value", "max_value"):
                value = item.get(bound) or ""
                if value and value not in ("today", "now") and not _iso_date(value):
                    add(index, f"{variable}: {bound} {value!r} is not a date (YYYY-MM-DD)")
    position = {item.get("variable", ""): index for index, item in enumerate(items)}
    for index, item in enumerate(items):
        variable = item.get("variable", "")
        for field in ("branching", "calculation"):
            text = (item.get(field) or "").strip()
            if not text:
                continue
            try:
                logic.check(text, kinds=kinds)
            except logic.LogicError as exc:
                add(index, f"{variable}: {field}: {exc}")
                continue
            # A calculated field is worked out where it stands (the server's pass in item
            # order, and the phone's): used before it, it is still blank there, and a question
            # shown by it would be hidden and its answer dropped (found by review).
            for name, _code, _at in logic.fields_used(logic.parse(text)):
                later = position.get(name, -1) > index
                if later and kinds.get(name) == Item.Kind.CALC:
                    add(
                        index,
                        f"{variable}: {field}: uses [{name}], a calculated field that comes "
                        "after it; move the calculation before this question",
                    )
    if errors:
        raise ValidationError(errors)


@transaction.atomic
def instrument_items_set(
    *, instrument: Instrument, items: list[dict], note: str = ""
) -> InstrumentVersion:
    """Give ``instrument`` these items: a new version when the current one has responses
    (or there is none yet), otherwise the current version is replaced in place."""
    items_validate(items)
    recodes_refuse(instrument=instrument, items=items)
    current = (
        InstrumentVersion.objects.select_for_update()
        .filter(instrument=instrument)
        .order_by("-number")
        .first()
    )
    if current is None or current.responses.exists():
        version = InstrumentVersion.objects.create(
            instrument=instrument, number=(current.number + 1) if current else 1, note=note
        )
    else:
        version = current
        version.items.all().delete()
        if note:
            version.note = note
            version.save(update_fields=["note"])
    Item.objects.bulk_create(
        Item(version=version, **{**fields, "position": fields.get("position", position)})
        for position, fields in enumerate(items, start=1)
    )
    _ITEMS_CACHE.clear()
    private_variables_forget()
    return version


def _text(label, language: str) -> str:
    """A choice's label in ``language``, English where it has none (an old item's label may
    be plain text)."""
    if isinstance(label, dict):
        return str(label.get(language) or label.get("en") or "")
    return str(label or "")


def _said(label, language: str) -> str:
    """A choice's label in ``language`` (English where it has none), as compared: trimmed and
    case folded."""
    return " ".join(_text(label, language).split()).casefold()


def _codes(choices) -> dict[str, str]:
    return {str(c.get("code")): c.get("label") for c in choices or []}


def recodes_refuse(*, instrument: Instrument, items: list[dict]) -> None:
    """Refuse choices whose codes changed meaning since a version already saved: an answered
    version of this instrument, or any version of another of the study (a dataset gives a
    variable of both one column).

    Answers keep the code they were given, and a dataset labels a code once: a code whose
    label is now another code's old one (an option inserted mid-list and the codes after it
    renumbered, two options swapped) would have its old answers read with the new meaning in
    every labelled file. Meaning is read in the study's own language, so a translation fixed
    in another is fine, and so is a reworded label (it matches no other code's). Only the
    questions whose choices this edit changes are checked: a conflict saved before is not
    blamed on an edit of another question."""
    current = instrument.current_version
    unchanged = {
        item.variable: _codes(item.choices)
        for item in (current.items.all() if current is not None else ())
        if item.kind in CHOICE_KINDS
    }
    wanted = {
        item.get("variable"): index
        for index, item in enumerate(items)
        if item.get("kind") in CHOICE_KINDS
        and unchanged.get(item.get("variable")) != _codes(item.get("choices"))
    }
    if not wanted:
        return
    language = (
        Instrument.objects.filter(pk=instrument.pk)
        .values_list("study__default_language", flat=True)
        .first()
        or "en"
    )
    answered = Response.objects.filter(instrument_version=OuterRef("version"))
    earlier = (
        Item.objects.filter(
            # a version of this instrument nobody answered has no answers to misread
            Q(Exists(answered)) | ~Q(version__instrument=instrument),
            version__instrument__study_id=instrument.study_id,
            variable__in=list(wanted),
            kind__in=list(CHOICE_KINDS),
        )
        .select_related("version__instrument")
        .order_by("version__instrument__slug", "version__number")
    )
    errors: dict[str, list[str]] = {}
    for old in earlier:
        index = wanted[old.variable]
        before = {code: _said(label, language) for code, label in _codes(old.choices).items()}
        shown = _codes(items[index].get("choices"))
        where = f"version {old.version.number}"
        if old.version.instrument_id != instrument.pk:
            where = f"{old.version.instrument.slug}'s {where}"
        for code, label in shown.items():
            said = _said(label, language)
            if not said or said == before.get(code):
                continue
            for other, was in before.items():
                if other != code and was == said:
                    errors.setdefault(str(index), []).append(
                        f"{old.variable}: choices: code {code} now means what code {other} "
                        f"meant in {where} (“{_text(label, language)}”). Answers already "
                        "given keep their codes, so a code keeps its meaning: give a new "
                        "option a new code, or the question a new variable name."
                    )
    if errors:
        raise ValidationError(
            {key: list(dict.fromkeys(messages)) for key, messages in errors.items()}
        )


def version_items_as_dicts(version: InstrumentVersion) -> list[dict]:
    """A version's items in the shape ``instrument_items_set`` takes (for copying, export)."""
    fields = [f.name for f in Item._meta.fields if f.name not in ("id", "version")]
    return [
        {name: getattr(item, name) for name in fields}
        for item in version.items.order_by("position")
    ]


_ITEMS_CACHE: dict[tuple[int, int, int], list[Item]] = {}


class InstrumentNotReady(Exception):
    """An instrument without any version cannot be answered."""


def version_with_items(
    *, instrument: Instrument | None = None, version_id: int | None = None
) -> tuple[InstrumentVersion, list[Item]]:
    """A version (the instrument's current one, or ``version_id``) and its items in order.

    Items are cached per process under a key that includes the number and highest id of the
    version's items, read in the same query as the version, so an in-place edit (which
    deletes and recreates items) is never served stale.
    """
    # One statement: the version and a stamp of its items (count and highest id).
    where = "v.id = %s" if version_id is not None else "v.instrument_id = %s"
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT v.id, v.number, COUNT(i.id), MAX(i.id) FROM surveys_instrumentversion v "
            "LEFT JOIN surveys_item i ON i.version_id = v.id "
            f"WHERE {where} GROUP BY v.id, v.number ORDER BY v.number DESC LIMIT 1",
            [version_id if version_id is not None else instrument.pk],
        )
        row = cursor.fetchone()
    if row is None:
        raise InstrumentNotReady(f"{instrument.name} has no questions yet.")
    return version_items_stamped(
        instrument=instrument,
        version_id=row[0],
        number=row[1],
        item_count=row[2],
        top_item_id=row[3],
    )


# The pieces of SQL that read a stamped current version, for callers that fold it into their
# own statement (the submission reads it together with the locked assignment), over the
# instrument ``ins`` joined there.
CURRENT_VERSION_SQL = (
    "SELECT v.id FROM surveys_instrumentversion v WHERE v.instrument_id = ins.id "
    "ORDER BY v.number DESC LIMIT 1"
)
CURRENT_VERSION_COLUMNS_SQL = (
    f"({CURRENT_VERSION_SQL}) AS cv_id, "
    "(SELECT v.number FROM surveys_instrumentversion v WHERE v.instrument_id = ins.id "
    "ORDER BY v.number DESC LIMIT 1) AS cv_number, "
    f"(SELECT COUNT(*) FROM surveys_item i WHERE i.version_id = ({CURRENT_VERSION_SQL})) "
    "AS cv_items, "
    f"(SELECT MAX(i.id) FROM surveys_item i WHERE i.version_id = ({CURRENT_VERSION_SQL})) "
    "AS cv_top"
)


def version_items_stamped(
    *,
    instrument: Instrument | None,
    version_id: int | None,
    number: int | None,
    item_count: int,
    top_item_id: int | None,
) -> tuple[InstrumentVersion, list[Item]]:
    """The version and its items, from the cache when the stamp (count and highest id of its
    items) matches."""
    if version_id is None:
        raise InstrumentNotReady(f"{instrument.name} has no questions yet.")
    version = InstrumentVersion(
        pk=version_id, number=number, instrument_id=instrument.pk if instrument else None
    )
    key = (version_id, int(item_count), top_item_id or 0)
    items = _ITEMS_CACHE.get(key)
    if items is None:
        items = list(Item.objects.filter(version_id=version_id).order_by("position"))
        if len(_ITEMS_CACHE) > 256:
            _ITEMS_CACHE.clear()
        _ITEMS_CACHE[key] = items
    return version, items

"""Reused CSV lines: an export writes again only the participants whose data changed.

A long or wide CSV export is the same text every time for a participant whose data has not
changed, so each participant's lines are kept (``DatasetLine``) under two keys:

- the **plan key** (``DatasetLinePlan``): everything that shapes every participant's lines —
  the dataset's columns and their metadata (which follow from the study's design and the
  export's options), the identifiers left out (``selectors.study_identifier_variables``), the
  study's design itself, the shape, codes or labels, the participant ID
  setting, a fingerprint of the secret key (pids and date shifts are keyed by it), and the
  fingerprint of the software (``surveys.fingerprint``: the project's code and the versions of
  Python, pandas, NumPy, pyarrow and the time zone data, as the process started with them). Any
  of these changing gives a new plan, whose lines are all written afresh.
- the **source key** of each participant: a digest of everything of theirs the builder reads —
  their study ID, site code, enrolment day and time zone; every assignment of the dataset's
  waves (wave, occurrence, status, window and due times, completion); every submitted
  response's instrument, version and answers. Computed by the database (one query for the
  whole scope on PostgreSQL), so checking 10,000 participants costs about what reading their
  answers once would.

An export computes the scope's source keys, builds (with the one dataset builder, a batch at a
time) the lines of every participant whose key differs from the kept one, stores them, then
streams every participant's lines from the store in the dataset's order. What it writes is byte
for byte what the builder alone would write (tests compare the two after every kind of change).

Between exports the beat keeps the lines current (``surveys.exports.export_lines_warm``, every
five minutes): each plan an export used in the last ``PLAN_UNUSED_DAYS`` days keeps how its last
export asked for it (``DatasetLinePlan.recipe``: the de-identified options and the sites its user
could see), and the participants whose data changed since are built again in the background, so
the next export of the same options reads (almost) every line back. ``plan_lock`` saves two
processes building the same plan's lines at once; correctness does not rest on it: a batch's
lines are stored only if its participants' data is still what they were built from
(``_keep_unchanged``), so lines of data that changed meanwhile never overwrite newer ones, and
an erasure during a build leaves nothing of the erased data behind.

Only de-identified exports are kept: an identified export (study IDs, identifier items, free
text) is always built afresh and leaves nothing behind. A participant's kept lines go when
their identifiers are erased or they are deleted; plans unused for ``PLAN_UNUSED_DAYS`` go with
their lines (``plans_expire``, from the export sweep).
"""

import hashlib
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta

import pandas as pd
from django.db import IntegrityError, connection, transaction
from django.db.models.functions import Collate
from django.utils import timezone
from django.utils.crypto import salted_hmac

from surveys.fingerprint import software_fingerprint
from surveys.models import (
    Assignment,
    DatasetLine,
    DatasetLinePlan,
    Participant,
    Response,
)

# Bump when the way lines are kept changes (what a key covers, how lines are split).
FORMAT = 2
PLAN_UNUSED_DAYS = 14
WRITE_BATCH = 500
READ_CHUNK = 2000
_EOL = "\r\n"
_LOCK_CLASS = 7_461_002  # pg_try_advisory_lock(class, plan id): one refresh of a plan at a time


def _fields(obj) -> dict:
    return {f.attname: getattr(obj, f.attname) for f in obj._meta.concrete_fields}


def _structure(structure) -> dict:
    """The study's design as the dataset read it: waves, their instruments, every item."""
    return {
        "waves": [_fields(wave) for wave in structure.waves],
        "wave_instruments": {
            str(wave): [_fields(i) for i in found]
            for wave, found in structure.wave_instruments.items()
        },
        "versions": {
            str(instrument): [
                [version_id, number, [_fields(item) for item in items]]
                for version_id, number, items in versions
            ]
            for instrument, versions in structure.versions.items()
        },
    }


def plan_key(dataset, *, shape: str, labels: bool) -> str:
    """The key of everything that shapes every participant's lines (see the module's doc)."""
    plan = dataset.plan
    payload = {
        "format": FORMAT,
        "software": software_fingerprint(),
        "secret": salted_hmac(
            "surveys.datasets.linecache", "secret", algorithm="sha256"
        ).hexdigest(),
        "study": [dataset.study.pk, dataset.study.export_id],
        "shape": shape,
        "labels": labels,
        "options": [
            plan.language,
            plan.date_shift,
            plan.include_identifiers,
            plan.include_free_text,
        ],
        "meta": dataset.meta,
        "columns": dataset.columns_meta,
        # what decides which items are columns at all: a question marked as an identifier in
        # a new version takes the column out of the lines of answers to the older ones too
        "identifiers": sorted(plan.identifiers),
        "structure": _structure(dataset.structure),
    }
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


# --- Source keys ------------------------------------------------------------------------------

# PostgreSQL (14 or later): one 64-bit hash per row, of its values as they are
# (``hash_record_extended``), combined per participant with XOR (rows carry their ids, so no two
# rows of a participant are alike and cancel out). Answers are hashed as their jsonb text, not
# by ``jsonb_hash_extended``: that one hashes equal numbers alike, and an answer rewritten from
# 1 to 1.0 (by hand, or by a bulk update that leaves ``updated_at``) reads as another value
# ("[1.0]" is not "[1]" in a multiple-choice cell).
_PG_KEYED = """
WITH people AS (
    SELECT p.id, hash_record_extended(ROW(p.code, s.code, p.enrolled_on, p.timezone), 0) AS k
    FROM surveys_participant p JOIN surveys_site s ON s.id = p.site_id
    WHERE p.id IN ({scope})
), assigned AS (
    SELECT a.participant_id,
           bit_xor(hash_record_extended(ROW(a.id, a.wave_id, a.occurrence, a.status,
                                            a.opens_at, a.completed_at, a.due_at), 0)) AS k
    FROM surveys_assignment a
    WHERE a.participant_id IN (SELECT id FROM people) AND a.wave_id = ANY(%s)
    GROUP BY a.participant_id
), answered AS (
    SELECT participant_id, bit_xor(k) AS k
    FROM (  -- each row's hash first (OFFSET 0: not merged), so no answers travel further
        SELECT a.participant_id,
               hash_record_extended(ROW(r.id, r.assignment_id, r.instrument_id,
                                        r.instrument_version_id, r.updated_at,
                                        hashtextextended(r.answers::text, 0)), 0) AS k
        FROM surveys_response r JOIN surveys_assignment a ON a.id = r.assignment_id
        WHERE a.participant_id IN (SELECT id FROM people) AND a.wave_id = ANY(%s)
          AND r.status = %s
        OFFSET 0
    ) hashed
    GROUP BY participant_id
), keyed AS (
    SELECT people.id,
           md5(concat_ws(':', people.k, coalesce(assigned.k, 0), coalesce(answered.k, 0))) AS k
    FROM people
    LEFT JOIN assigned ON assigned.participant_id = people.id
    LEFT JOIN answered ON answered.participant_id = people.id
)
"""
_PG_STALE = """
SELECT keyed.id, keyed.k
FROM keyed LEFT JOIN surveys_datasetline kept
     ON kept.participant_id = keyed.id AND kept.plan_id = %s
WHERE kept.source_key IS DISTINCT FROM keyed.k
"""
_PG_NOW = "SELECT keyed.id, keyed.k FROM keyed"


def _keys_postgresql(scope_sql: str, scope_params, waves: list[int], plan=None) -> dict:
    """The source keys of the participants ``scope_sql`` selects (their ids); with ``plan``,
    only those whose kept lines under it were written from other data."""
    params = [*scope_params, waves, waves, Response.Status.SUBMITTED]
    query = _PG_KEYED.format(scope=scope_sql)
    if plan is None:
        query += _PG_NOW
    else:
        query += _PG_STALE
        params.append(plan.pk)
    with transaction.atomic(), connection.cursor() as cursor:
        # Compiling this query with LLVM would take longer than running it.
        cursor.execute("SET LOCAL jit = off")
        cursor.execute(query, params)
        return dict(cursor.fetchall())


def _keys_python(scope, waves: list[int]) -> dict[int, str]:
    """The same keys read row by row (SQLite: development and tests); ``scope`` is a
    queryset of participants."""
    digests: dict[int, hashlib._Hash] = {}
    for pk, *person in scope.order_by("pk").values_list(
        "pk", "code", "site__code", "enrolled_on", "timezone"
    ):
        digests[pk] = hashlib.md5(repr(person).encode(), usedforsecurity=False)
    for participant, *row in (
        Assignment.objects.filter(participant_id__in=scope.values("pk"), wave_id__in=waves)
        .order_by("pk")
        .values_list(
            "participant_id",
            "pk",
            "wave_id",
            "occurrence",
            "status",
            "opens_at",
            "completed_at",
            "due_at",
        )
    ):
        if participant in digests:  # not someone enrolled since the first query
            digests[participant].update(b"a" + repr(row).encode())
    for participant, *row in (
        Response.objects.filter(
            assignment__participant_id__in=scope.values("pk"),
            assignment__wave_id__in=waves,
            status=Response.Status.SUBMITTED,
        )
        .order_by("pk")
        .values_list(
            "assignment__participant_id",
            "pk",
            "assignment_id",
            "instrument_id",
            "instrument_version_id",
            "answers",
        )
    ):
        if participant in digests:
            row[-1] = json.dumps(row[-1], sort_keys=True)
            digests[participant].update(b"r" + repr(row).encode())
    return {pk: digest.hexdigest() for pk, digest in digests.items()}


def stale_participants(dataset, plan: DatasetLinePlan) -> dict[int, str]:
    """Participants in the dataset's scope whose kept lines (under ``plan``) are missing or
    were written from other data, with their data's key now."""
    waves = sorted(dataset.fetched_waves)
    if connection.vendor == "postgresql":
        scope_sql, scope_params = dataset.scope.values("pk").query.sql_with_params()
        return _keys_postgresql(scope_sql, scope_params, waves, plan)
    keys = _keys_python(dataset.scope, waves)
    kept = dict(
        DatasetLine.objects.filter(
            plan=plan, participant__in=dataset.scope.values("pk")
        ).values_list("participant_id", "source_key")
    )
    return {pk: key for pk, key in keys.items() if kept.get(pk) != key}


def source_keys(dataset, pks: list[int]) -> dict[int, str]:
    """The source keys of these participants now (those that still exist)."""
    waves = sorted(dataset.fetched_waves)
    if connection.vendor == "postgresql":
        return _keys_postgresql("SELECT unnest(%s::bigint[])", [list(pks)], waves)
    return _keys_python(Participant.objects.filter(pk__in=pks), waves)


# --- Lines ------------------------------------------------------------------------------------


def plan_for(
    dataset,
    *,
    shape: str,
    labels: bool,
    recipe: dict | None = None,
    used_at=None,
) -> DatasetLinePlan:
    """The kept plan of these lines (made if new), marked as used (at ``used_at``, or now).
    ``recipe``, if given, is how to build the same dataset again (stored on the plan for
    ``surveys.exports.export_lines_warm``)."""
    key = plan_key(dataset, shape=shape, labels=labels)
    now = timezone.now()
    used = used_at or now
    try:
        with transaction.atomic():
            plan, created = DatasetLinePlan.objects.get_or_create(
                key=key,
                defaults={
                    "study": dataset.study,
                    "created_at": now,
                    "used_at": used,
                    "recipe": recipe or {},
                },
            )
    except IntegrityError:  # made at the same moment by another export
        plan, created = DatasetLinePlan.objects.get(key=key), False
    if created:
        return plan
    changes = {}
    # an export's use is written at most once an hour; a use carried over from another plan
    # (``used_at``) whenever it is later than the plan's own
    if plan.used_at < (used - timedelta(hours=1) if used_at is None else used):
        changes["used_at"] = used
    if recipe is not None and plan.recipe != recipe:
        changes["recipe"] = recipe
    if changes:
        DatasetLinePlan.objects.filter(pk=plan.pk).update(**changes)
        for name, value in changes.items():
            setattr(plan, name, value)
    return plan


def header_keep(plan: DatasetLinePlan, header: str) -> None:
    DatasetLinePlan.objects.filter(pk=plan.pk).update(header=header)
    plan.header = header


@contextmanager
def _advisory_try(key: int) -> Iterator[bool]:
    """Whether this process holds the advisory lock (``_LOCK_CLASS``, key) for the block
    (PostgreSQL; elsewhere always). Not waited for: False when another process holds it."""
    if connection.vendor != "postgresql":
        yield True
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [_LOCK_CLASS, key])
        got = cursor.fetchone()[0]
    # A session lock: were the process stopped between taking it and here (a task's hard time
    # limit), it would be held until the connection closes, and the plan's warm-ups skipped
    # until then. Nothing depends on it for correctness (see ``plan_lock``).
    try:
        yield got
    finally:
        if got:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [_LOCK_CLASS, key])


def plan_lock(plan: DatasetLinePlan):
    """Whether this process may refresh the plan's lines now (no other process holds the
    plan's lock; it is held until the block ends). Only saves work: two refreshes of a plan at
    once store the same lines, since each stores only lines of data unchanged since it was
    built (``_keep_unchanged``)."""
    return _advisory_try(plan.pk)


def warm_lock():
    """Whether this process may run the warm-up now (no other warm-up is running)."""
    return _advisory_try(0)  # no plan has the id 0


def _blocks(text: str, pids: list[str]) -> dict[str, str] | None:
    """The CSV text of a frame split into each pid's lines; None when a cell holds a line
    break (the text cannot be split by lines)."""
    lines = text.split(_EOL)
    if len(lines) != len(pids) + 1 or lines[-1] != "":
        return None
    blocks: dict[str, list[str]] = {}
    for pid, line in zip(pids, lines, strict=False):
        blocks.setdefault(pid, []).append(line + _EOL)
    return {pid: "".join(found) for pid, found in blocks.items()}


def _store(plan: DatasetLinePlan, rows: list[DatasetLine]) -> None:
    for start in range(0, len(rows), WRITE_BATCH):
        DatasetLine.objects.bulk_create(
            rows[start : start + WRITE_BATCH],
            update_conflicts=True,
            unique_fields=["plan", "participant"],
            update_fields=["source_key", "sort_key", "lines"],
        )


class LinesKeptChanging(Exception):
    """Some participants' data changed again every time their lines were built."""


def _keep_unchanged(
    dataset, plan: DatasetLinePlan, rows: list[DatasetLine], built: dict[int, str]
) -> dict[int, str]:
    """Store the rows of the participants whose data is still what their lines were built
    from (``built``: pk → source key then). Returns the others, pk → their key now.

    Checked and stored in one transaction, the participants' rows locked (FOR NO KEY UPDATE)
    meanwhile: lines built from data that has changed since never overwrite lines another
    export (or warm-up) built from newer data, and an erasure of answers or identifiers
    (which locks the participant FOR UPDATE and drops their kept lines) comes wholly before
    the check or wholly after the write."""
    pks = sorted(built)
    with transaction.atomic():
        list(
            Participant.objects.select_for_update(no_key=True)
            .filter(pk__in=pks)
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        now = source_keys(dataset, pks)
        _store(
            plan, [row for row in rows if now.get(row.participant_id) == built[row.participant_id]]
        )
    return {pk: key for pk, key in now.items() if key != built[pk]}


def refresh(
    dataset,
    plan: DatasetLinePlan,
    stale: dict[int, str],
    *,
    lines_of: Callable[[pd.DataFrame], tuple[str, list[str]]],
    progress: Callable[[int, int], None] | None = None,
    rounds: int = 3,
) -> int:
    """Build and keep the lines of the ``stale`` participants (pk → source key), a batch of
    participants at a time. ``lines_of`` turns a batch's long frame into its CSV text and the
    pid of each line. A participant without rows keeps an empty text (nothing to write).

    A participant whose data changed while their lines were built is built again from the
    new data (up to ``rounds`` times; then ``LinesKeptChanging``). Returns how many
    participants were built."""
    if not stale:
        return 0
    pending = dict(stale)
    built = 0
    for round_ in range(rounds):
        people = dataset.people(only=pending)  # those still in the dataset's scope
        size = dataset.batch_size
        total = len(people)
        built += total
        changed: dict[int, str] = {}
        for start in range(0, total, size):
            chunk = people.iloc[start : start + size]
            batch = dataset.batch_frame(chunk)
            text, line_pids = lines_of(batch)
            blocks = _blocks(text, line_pids)
            if blocks is None:  # a line break in a cell: each participant's lines on their own
                blocks = {
                    pid: lines_of(batch[batch["pid"] == pid].reset_index(drop=True))[0]
                    for pid in dict.fromkeys(line_pids)
                }
            pks = chunk["pk"].tolist()
            rows = [
                DatasetLine(
                    plan=plan,
                    participant_id=pk,
                    source_key=pending[pk],
                    sort_key=pid,
                    lines=blocks.get(pid, ""),
                )
                for pk, pid in zip(pks, chunk["pid"].tolist(), strict=True)
            ]
            # checked and stored a write batch at a time: participants' rows are locked only
            # while theirs are
            for at in range(0, len(rows), WRITE_BATCH):
                part = rows[at : at + WRITE_BATCH]
                built_keys = {row.participant_id: pending[row.participant_id] for row in part}
                changed.update(_keep_unchanged(dataset, plan, part, built_keys))
            if progress is not None and round_ == 0:
                progress(min(start + size, total), total)
        if not changed:
            return built
        pending = changed
    raise LinesKeptChanging(
        f"The data of {len(pending)} participant(s) changed each time their lines were built."
    )


def kept_lines(dataset, plan: DatasetLinePlan) -> Iterator[str]:
    """Every in-scope participant's kept lines, in the dataset's order (pid), a chunk of
    ``READ_CHUNK`` participants at a time."""
    order = Collate("sort_key", "C") if connection.vendor == "postgresql" else "sort_key"
    found = (
        DatasetLine.objects.filter(plan=plan, participant__in=dataset.scope.values("pk"))
        .exclude(lines="")
        .order_by(order, "participant_id")
        .values_list("lines", flat=True)
    )
    chunk: list[str] = []
    for lines in found.iterator(chunk_size=READ_CHUNK):
        chunk.append(lines)
        if len(chunk) >= READ_CHUNK:
            yield "".join(chunk)
            chunk = []
    if chunk:
        yield "".join(chunk)


def forget_participant(participant: Participant) -> int:
    """Delete every kept line of the participant (their identifiers were erased)."""
    return DatasetLine.objects.filter(participant=participant).delete()[0]


def plans_expire(*, now=None) -> int:
    """Delete plans (and their lines) no export has used for ``PLAN_UNUSED_DAYS``."""
    now = now or timezone.now()
    cutoff = now - timedelta(days=PLAN_UNUSED_DAYS)
    return (
        DatasetLinePlan.objects.filter(used_at__lt=cutoff)
        .delete()[1]
        .get(DatasetLinePlan._meta.label, 0)
    )

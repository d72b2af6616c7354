"""The narrow copy of the answers the retention dashboard splits by (``SubgroupAnswer``), on
PostgreSQL.

A split used to take each participant's answer out of every submitted response's JSON: the
whole response table read for a few thousand bytes (benchmarks/README.md). The copy holds only
those answers, one row per submitted response of a wave's first occurrence and registered
variable, so the split reads a table of a few megabytes.

Database triggers keep it, so that every way a response is written keeps it too (a submit, a
staff edit, an erasure, the demo's bulk insert, raw SQL): after a response is inserted
submitted, or its answers or status change while it is or was submitted, its rows are written
again from its JSON, for the variables of ``SubgroupVariable`` under its instrument's slug; a
deleted response's rows are deleted; an instrument whose slug changes has its rows written
again. ``answer`` is ``answers ->> variable``, the text Django's ``KeyTextTransform`` gives, so
the split parses it as before.

``subgroup_copy_sync`` runs after every ``migrate`` (``post_migrate``): it puts the triggers back
if a migration dropped them (altering a column a trigger names needs that) and makes
``SubgroupVariable`` the registry's pairs, copying the answers of a newly registered subgroup.
Until a pair is there the split reads the responses' JSON, so the copy is only ever a faster
way to the same numbers. SQLite (development, the demo) has no copy: the split reads the JSON.
"""

import logging

from django.db import DEFAULT_DB_ALIAS, OperationalError, connections, transaction
from django.db.models import Value
from django.db.models.fields.json import KeyTextTransform
from django.utils import timezone

log = logging.getLogger(__name__)

FUNCTIONS = {
    "surveys_subgroup_answer_sync": """
CREATE OR REPLACE FUNCTION surveys_subgroup_answer_sync() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'UPDATE' THEN
    DELETE FROM surveys_subgroupanswer WHERE response_id = OLD.id;
  END IF;
  INSERT INTO surveys_subgroupanswer
    (response_id, participant_id, wave_id, instrument_id, variable, answer)
  SELECT NEW.id, a.participant_id, a.wave_id, NEW.instrument_id, v.variable,
    NEW.answers ->> v.variable
  FROM surveys_assignment a
  JOIN surveys_instrument i ON i.id = NEW.instrument_id
  JOIN surveys_subgroupvariable v ON v.instrument_slug = i.slug
  WHERE a.id = NEW.assignment_id AND a.occurrence = 0 AND NEW.status = 'submitted';
  RETURN NULL;
END
$$""",
    "surveys_subgroup_answer_forget": """
CREATE OR REPLACE FUNCTION surveys_subgroup_answer_forget() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM surveys_subgroupanswer s USING gone WHERE s.response_id = gone.id;
  RETURN NULL;
END
$$""",
    "surveys_subgroup_answer_reslug": """
CREATE OR REPLACE FUNCTION surveys_subgroup_answer_reslug() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM surveys_subgroupanswer WHERE instrument_id = NEW.id;
  INSERT INTO surveys_subgroupanswer
    (response_id, participant_id, wave_id, instrument_id, variable, answer)
  SELECT r.id, a.participant_id, a.wave_id, r.instrument_id, v.variable,
    r.answers ->> v.variable
  FROM surveys_response r
  JOIN surveys_assignment a ON a.id = r.assignment_id
  JOIN surveys_subgroupvariable v ON v.instrument_slug = NEW.slug
  WHERE r.instrument_id = NEW.id AND r.status = 'submitted' AND a.occurrence = 0;
  RETURN NULL;
END
$$""",
}

# name: (table, CREATE TRIGGER)
TRIGGERS = {
    "surveys_subgroup_answer_insert": (
        "surveys_response",
        "CREATE TRIGGER surveys_subgroup_answer_insert AFTER INSERT ON surveys_response "
        "FOR EACH ROW WHEN (NEW.status = 'submitted') "
        "EXECUTE FUNCTION surveys_subgroup_answer_sync()",
    ),
    "surveys_subgroup_answer_update": (
        "surveys_response",
        "CREATE TRIGGER surveys_subgroup_answer_update AFTER UPDATE OF answers, status "
        "ON surveys_response FOR EACH ROW "
        "WHEN ((NEW.status = 'submitted' OR OLD.status = 'submitted') "
        "AND (NEW.answers IS DISTINCT FROM OLD.answers OR NEW.status IS DISTINCT FROM OLD.status)) "
        "EXECUTE FUNCTION surveys_subgroup_answer_sync()",
    ),
    # Once per statement, with the deleted rows: an erasure or a demo rebuild deletes many.
    "surveys_subgroup_answer_delete": (
        "surveys_response",
        "CREATE TRIGGER surveys_subgroup_answer_delete AFTER DELETE ON surveys_response "
        "REFERENCING OLD TABLE AS gone FOR EACH STATEMENT "
        "EXECUTE FUNCTION surveys_subgroup_answer_forget()",
    ),
    "surveys_subgroup_answer_reslug": (
        "surveys_instrument",
        "CREATE TRIGGER surveys_subgroup_answer_reslug AFTER UPDATE OF slug "
        "ON surveys_instrument FOR EACH ROW WHEN (NEW.slug IS DISTINCT FROM OLD.slug) "
        "EXECUTE FUNCTION surveys_subgroup_answer_reslug()",
    ),
}


def triggers_present(connection) -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal AND tgname = ANY(%s)",
            [list(TRIGGERS)],
        )
        return {row[0] for row in cursor.fetchall()}


def triggers_ensure(connection) -> None:
    """The functions as written here, and each trigger that is missing (creating a trigger
    locks its table, so one already there is left alone). PostgreSQL only."""
    if connection.vendor != "postgresql":
        return
    present = triggers_present(connection)
    with connection.cursor() as cursor:
        for sql in FUNCTIONS.values():
            cursor.execute(sql)
        for name, (_table, sql) in TRIGGERS.items():
            if name not in present:
                cursor.execute(sql)


def triggers_drop(connection) -> None:
    """Before a migration alters a column a trigger names (``answers``, ``status``, ``slug``),
    or undoes migration 0034; ``migrate`` puts them back afterwards (``subgroup_copy_sync``)."""
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        for name, (table, _sql) in TRIGGERS.items():
            cursor.execute(f"DROP TRIGGER IF EXISTS {name} ON {table}")
        for name in FUNCTIONS:
            cursor.execute(f"DROP FUNCTION IF EXISTS {name}()")


def subgroup_copy_sync(
    *, using: str = DEFAULT_DB_ALIAS, apps=None, lock_timeout_ms: int = 10_000, **kwargs
) -> None:
    """After ``migrate``: the triggers, and ``SubgroupVariable`` equal to the registry's
    (instrument, variable) pairs. A pair no subgroup uses any more goes with its rows; a new
    pair's rows are copied from every response already submitted. The responses are locked
    against writes meanwhile (``SHARE ROW EXCLUSIVE``, which also keeps a second ``migrate``
    out), so none is submitted between the copy and the triggers seeing the new pair; readers
    go on. If the lock is not had within ``lock_timeout_ms`` (a long write holds the table),
    nothing changes and the split keeps reading the JSON until the next ``migrate``."""
    from surveys.retention import subgroups

    connection = connections[using]
    if connection.vendor != "postgresql":
        return
    if apps is None:
        from django.apps import apps
    try:
        variable_model = apps.get_model("surveys", "SubgroupVariable")
        answer_model = apps.get_model("surveys", "SubgroupAnswer")
        response_model = apps.get_model("surveys", "Response")
    except LookupError:
        return  # migrated back to before migration 0034
    triggers_ensure(connection)
    wanted = {(s.instrument, s.variable) for s in subgroups()}
    if set(variable_model.objects.using(using).values_list("instrument_slug", "variable")) == (
        wanted
    ):
        return  # the usual migrate: nothing to lock (read again under the lock otherwise)
    try:
        with transaction.atomic(using=using), connection.cursor() as cursor:
            # Back as it was at the end: the caller may be in a transaction (a test).
            cursor.execute(
                "SELECT current_setting('lock_timeout'), set_config('lock_timeout', %s, true)",
                [f"{lock_timeout_ms}ms"],
            )
            lock_timeout = cursor.fetchone()[0]
            cursor.execute("LOCK TABLE surveys_response IN SHARE ROW EXCLUSIVE MODE")
            _pairs_sync(variable_model, answer_model, response_model, using, wanted, cursor)
            cursor.execute("SELECT set_config('lock_timeout', %s, true)", [lock_timeout])
    except OperationalError as exc:
        if getattr(exc.__cause__, "pgcode", None) != "55P03":  # lock_not_available
            raise
        log.warning(
            "The subgroup answers were not brought up to date: the responses stayed locked "
            "for %s ms. The retention split reads the responses until the next migrate.",
            lock_timeout_ms,
        )


def _pairs_sync(variable_model, answer_model, response_model, using, wanted, cursor) -> None:
    have = set(variable_model.objects.using(using).values_list("instrument_slug", "variable"))
    for slug, variable in have ^ wanted:  # removed, or to be copied from scratch
        variable_model.objects.using(using).filter(instrument_slug=slug, variable=variable).delete()
        answer_model.objects.using(using).filter(instrument__slug=slug, variable=variable).delete()
    now = timezone.now()
    for slug, variable in sorted(wanted - have):
        variable_model.objects.using(using).create(
            instrument_slug=slug, variable=variable, filled_at=now
        )
        _copy(response_model, answer_model, using, slug, variable, cursor)


def _copy(response_model, answer_model, using, slug, variable, cursor) -> None:
    """One pair's rows from the submitted responses, by the ORM's own JSON extraction."""
    rows = (
        response_model.objects.using(using)
        .filter(status="submitted", instrument__slug=slug, assignment__occurrence=0)
        .order_by()
        .values_list(
            "pk",
            "assignment__participant_id",
            "assignment__wave_id",
            "instrument_id",
            Value(variable),
            KeyTextTransform(variable, "answers"),
        )
    )
    select_sql, params = rows.query.get_compiler(using=using).as_sql()
    # The ORM's compiled SELECT; the rest is fixed text.
    cursor.execute(
        f"INSERT INTO {answer_model._meta.db_table} "
        "(response_id, participant_id, wave_id, instrument_id, variable, answer) "
        f"{select_sql}",
        params,
    )

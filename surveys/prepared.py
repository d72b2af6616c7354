"""Server-side prepared statements for the few statements of the busiest request.

On PostgreSQL, planning the submission's join queries took several times longer than running
them (about 0.2 ms of planning against 0.05 ms of execution for the scope query;
benchmarks/README.md). A statement prepared once per database connection is planned once.
Other databases run the statement as it is.

A prepared statement lives as long as its database session, so each connection prepares its
own on first use (a reconnect starts afresh). PostgreSQL replans a prepared statement itself
when a table it uses changes. Not for use behind a connection pooler in transaction mode
(which could hand the next transaction another server session); the deployment in
docker-compose.yml connects directly.
"""

import re
import weakref

from django.db import connection

# Raw DB-API connection -> names of the statements prepared on it.
_prepared: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_PLACEHOLDER = re.compile(r"%s")


def _numbered(sql: str) -> str:
    counter = iter(range(1, 1000))
    return _PLACEHOLDER.sub(lambda _: f"${next(counter)}", sql)


def statement(cursor, name: str, sql: str, param_count: int) -> str:
    """What to run for ``sql`` (with ``%s`` placeholders and no literal ``%``) with
    ``param_count`` parameters: on PostgreSQL, ``EXECUTE`` of the prepared statement ``name``
    (prepared with ``cursor`` on this connection's first use); elsewhere ``sql`` itself. For
    callers whose SQL runs elsewhere (``Model.objects.raw``), on the same connection."""
    if connection.vendor != "postgresql":
        return sql
    connection.ensure_connection()
    names = _prepared.setdefault(connection.connection, set())
    if name not in names:
        cursor.execute(f"PREPARE {name} AS {_numbered(sql)}")
        names.add(name)
    placeholders = ", ".join(["%s"] * param_count)
    return f"EXECUTE {name} ({placeholders})" if param_count else f"EXECUTE {name}"


def execute(cursor, name: str, sql: str, params: list | tuple) -> None:
    """Run ``sql`` (with ``%s`` placeholders and no literal ``%``) with ``params``; on
    PostgreSQL as the prepared statement ``name``, prepared on this connection's first use."""
    cursor.execute(statement(cursor, name, sql, len(params)), params)

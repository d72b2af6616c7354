"""``transaction.atomic`` whose ``BEGIN`` and ``COMMIT`` travel with the block's statements.

On PostgreSQL with psycopg2, Django's outermost ``atomic`` costs two round trips of its own:
psycopg2 sends ``BEGIN`` by itself before the block's first statement, and ``COMMIT`` by
itself at the end. On the busiest write (the survey submit: a lock and read, then one store)
each is a message to the server and back, paid by both processes. Here ``BEGIN`` goes in the
same query string as the block's first statement, and the block's last write can carry
``COMMIT`` (``Inline.commit_after``): the same transaction, the same locks, in two round
trips instead of four (the submit's processor time fell about 7 %, benchmarks/README.md).

How: Django's ``atomic`` is entered as usual (savepoints, ``on_commit`` hooks and
``needs_rollback`` work as ever inside), then psycopg2 is put back in autocommit, so that it
sends no ``BEGIN`` of its own and its ``commit()``/``rollback()`` at Django's exit are no-ops
(psycopg2 ends only a transaction it began). The transaction is the server's, begun by the
first statement's ``BEGIN`` and ended here: ``COMMIT`` (unless a statement carried it) when
the block ends normally, ``ROLLBACK`` when it raises or Django marked it for rollback. Should
ending it fail, or the block be interrupted before its end, the connection is closed (the
server rolls back): a connection is never handed on with a transaction open.

Used only where it can be: PostgreSQL through psycopg2, outside any atomic block (inside one,
the transaction has begun already: a plain ``atomic``, a savepoint), with no isolation level
configured (psycopg2 would send it with its own ``BEGIN``). Elsewhere (SQLite, psycopg 3,
tests inside a transaction) this is ``transaction.atomic`` and ``Inline`` is None.
"""

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connection, transaction
from psycopg2.extensions import TRANSACTION_STATUS_IDLE

logger = logging.getLogger(__name__)


class Inline:
    """The transaction of an ``atomic_inline`` block, begun with its first statement."""

    def __init__(self) -> None:
        self.begun = False
        self.committed = False
        self._commits_with: str | None = None

    def commit_after(self, sql: str) -> str:
        """``sql`` followed by ``COMMIT`` in one query string: for the block's last statement,
        whose rows are then not returned (psycopg2 hands back the last statement's, none).
        Should ``sql`` fail, ``COMMIT`` does not run (PostgreSQL skips the rest of the string)
        and the block rolls back as for any error. Nothing may run after it in the block."""
        self._commits_with = f"{sql}; COMMIT"
        return self._commits_with

    def _wrap(self, execute, sql, params, many, context):
        if self.committed:
            raise RuntimeError(
                "a statement after the one that committed this atomic_inline block would run "
                "outside its transaction"
            )
        # PREPARE (surveys.prepared, once per connection) is the session's, not the
        # transaction's: BEGIN goes with the first statement that is.
        if not self.begun and not sql.startswith("PREPARE "):
            self.begun = True
            if many:  # one BEGIN, not one per parameter set
                context["cursor"].execute("BEGIN")
            else:
                sql = f"BEGIN; {sql}"
        result = execute(sql, params, many, context)
        if self._commits_with is not None and sql.endswith(self._commits_with):
            self.committed = True
        return result


def _inline_possible() -> bool:
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        return False
    from django.db.backends.postgresql.psycopg_any import is_psycopg3

    # A configured isolation level is psycopg2's to send with its own BEGIN: not here.
    configured = "isolation_level" in connection.settings_dict.get("OPTIONS", {})
    return not is_psycopg3 and not configured and connection.get_autocommit()


def _end(sql: str) -> None:
    """Send ``sql`` (``COMMIT`` or ``ROLLBACK``) if the server has a transaction open; if
    that fails, close the connection, so that none is left open on it, and raise."""
    raw = connection.connection
    if raw is None or raw.closed or raw.info.transaction_status == TRANSACTION_STATUS_IDLE:
        return
    try:
        # The raw cursor: Django's refuses any statement once it marked the block for
        # rollback, ROLLBACK included.
        with connection.wrap_database_errors, raw.cursor() as cursor:
            cursor.execute(sql)
    except BaseException:
        connection.close()
        raise


@contextmanager
def atomic_inline() -> Iterator[Inline | None]:
    """``transaction.atomic()``, whose ``BEGIN`` is sent with the block's first statement and
    whose ``COMMIT`` may be sent with its last (see the module's docstring). Yields the
    ``Inline`` transaction, or None where this is a plain ``atomic``."""
    if not _inline_possible():
        with transaction.atomic():
            yield None
        return
    with transaction.atomic():
        raw = connection.connection
        raw.autocommit = True  # psycopg2 begins nothing; the first statement does
        inline = Inline()
        try:
            try:
                with connection.execute_wrapper(inline._wrap):
                    yield inline
            except BaseException:
                try:
                    _end("ROLLBACK")
                except Exception:  # the connection is closed; the original error is raised
                    logger.warning("Rollback failed; the database connection was closed.")
                raise
            _end("ROLLBACK" if connection.needs_rollback else "COMMIT")
        finally:
            if not raw.closed:
                if raw.info.transaction_status != TRANSACTION_STATUS_IDLE:
                    # Ended neither way (interrupted before its end): Django's end would not
                    # end it either, and the next request would run inside it.
                    logger.warning("A transaction was left open; the connection was closed.")
                    connection.close()
                else:
                    raw.autocommit = False  # as Django left it, for its own (no-op) end

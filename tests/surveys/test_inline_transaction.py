"""``atomic_inline``: a transaction whose BEGIN and COMMIT go with its statements (the submit's).

Real PostgreSQL transactions (``transaction=True``): what is committed is read back over a
second connection of its own, and no test leaves a transaction open on Django's connection.
"""

import psycopg2
import pytest
from django.db import DataError, connection, transaction
from django.test.utils import CaptureQueriesContext

from surveys.inline_transaction import atomic_inline
from surveys.models import Study

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _postgresql_only():
    if connection.vendor != "postgresql":
        pytest.skip("psycopg2 and PostgreSQL (CI sets DATABASE_URL)")


@pytest.fixture
def named(study):
    """The study's name as another connection reads it: what is committed, and only that."""
    other = psycopg2.connect(**connection.get_connection_params())
    other.autocommit = True

    def read() -> str:
        with other.cursor() as cursor:
            cursor.execute("SELECT name FROM surveys_study WHERE id = %s", [study.pk])
            return cursor.fetchone()[0]

    yield read
    other.close()


def _rename(study, name: str) -> None:
    Study.objects.filter(pk=study.pk).update(name=name)


def _sent(queries) -> list[str]:
    """The statements sent: Django's log also lists its own BEGIN and COMMIT, which psycopg2
    sends only for a transaction it began (``raw.status`` tells: never here)."""
    return [q["sql"] for q in queries.captured_queries if q["sql"] not in ("BEGIN", "COMMIT")]


def _no_transaction_open() -> bool:
    raw = connection.connection
    return raw is None or raw.info.transaction_status == psycopg2.extensions.TRANSACTION_STATUS_IDLE


def test_begin_goes_with_the_first_statement_and_commit_with_the_last(study, named):
    with CaptureQueriesContext(connection) as queries, atomic_inline() as inline:
        assert inline is not None
        _rename(study, "First")
        raw = connection.connection
        # The server's transaction is open; psycopg2 began none of its own (no BEGIN sent).
        assert raw.info.transaction_status == psycopg2.extensions.TRANSACTION_STATUS_INTRANS
        assert raw.status == psycopg2.extensions.STATUS_READY
        assert named() == "Trial study"  # not committed yet
        with connection.cursor() as cursor:
            cursor.execute(
                inline.commit_after("UPDATE surveys_study SET description = %s WHERE id = %s"),
                ["Second", study.pk],
            )
        assert _no_transaction_open()
        assert named() == "First"
    sql = _sent(queries)
    assert len(sql) == 2, sql
    assert sql[0].startswith("BEGIN; UPDATE") and sql[1].endswith("; COMMIT")
    study.refresh_from_db()
    assert (study.name, study.description) == ("First", "Second")
    assert connection.get_autocommit() and not connection.in_atomic_block


def test_without_a_committing_statement_the_block_commits_at_its_end(study, named):
    with atomic_inline():
        _rename(study, "Renamed")
        assert named() == "Trial study"
    assert named() == "Renamed" and _no_transaction_open()


def test_an_error_in_the_block_rolls_everything_back(study, named):
    with pytest.raises(ValueError), atomic_inline():
        _rename(study, "Lost")
        raise ValueError("the answers were refused")
    assert named() == "Trial study" and _no_transaction_open()
    _rename(study, "Later")  # the connection goes on, in autocommit
    assert named() == "Later"


def test_a_failed_statement_rolls_everything_back(study, named):
    with pytest.raises(DataError), atomic_inline():
        _rename(study, "Lost")
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 / 0")
    assert named() == "Trial study" and _no_transaction_open()


def test_a_failed_committing_statement_commits_nothing(study, named):
    """PostgreSQL skips the rest of a query string after an error: COMMIT does not run."""
    with pytest.raises(DataError), atomic_inline() as inline:
        _rename(study, "Lost")
        with connection.cursor() as cursor:
            cursor.execute(inline.commit_after("SELECT 1 / 0"))
    assert named() == "Trial study" and _no_transaction_open()


@pytest.mark.parametrize("error", ["in_python", "in_the_database"])
def test_an_error_caught_without_a_savepoint_still_rolls_the_block_back(study, named, error):
    """An inner block without a savepoint failed and its error was caught: Django marks the
    transaction for rollback, and the block's end rolls it back, as atomic's would, instead of
    committing (the server's transaction may be quite healthy: a Python error)."""
    with atomic_inline():
        _rename(study, "Lost")
        try:
            with transaction.atomic(savepoint=False), connection.cursor() as cursor:
                if error == "in_python":
                    raise ValueError("refused")
                cursor.execute("SELECT 1 / 0")
        except (ValueError, DataError):
            pass
        assert connection.needs_rollback
    assert named() == "Trial study" and _no_transaction_open()


def test_savepoints_inside_roll_back_only_their_part(study, named):
    with atomic_inline():
        _rename(study, "Kept")
        with pytest.raises(ValueError), transaction.atomic():
            Study.objects.filter(pk=study.pk).update(description="Lost")
            raise ValueError
    study.refresh_from_db()
    assert (named(), study.description) == ("Kept", "")


def test_on_commit_hooks_run_after_the_commit_and_never_after_a_rollback(study, named):
    seen = []
    with atomic_inline() as inline:
        _rename(study, "Committed")
        transaction.on_commit(lambda: seen.append(named()))
        with connection.cursor() as cursor:
            cursor.execute(inline.commit_after("SELECT 1"))
        assert seen == []  # not while the block runs
    assert seen == ["Committed"]
    with pytest.raises(ValueError), atomic_inline():
        _rename(study, "Lost")
        transaction.on_commit(lambda: seen.append("run after a rollback"))
        raise ValueError
    assert seen == ["Committed"]


def test_nothing_may_run_after_the_committing_statement(study, named):
    """It would run outside the transaction: refused, loudly (a programming error)."""
    with pytest.raises(RuntimeError, match="outside its transaction"), atomic_inline() as inline:
        with connection.cursor() as cursor:
            cursor.execute(inline.commit_after("UPDATE surveys_study SET name = 'Sent'"))
        _rename(study, "After")
    assert named() == "Sent" and _no_transaction_open()


def test_executemany_first_is_in_the_transaction_too(study, named):
    with pytest.raises(ValueError), atomic_inline():
        with connection.cursor() as cursor:
            cursor.executemany(
                "UPDATE surveys_study SET name = %s WHERE id = %s",
                [("One", study.pk), ("Two", study.pk)],
            )
        raw = connection.connection
        assert raw.info.transaction_status == psycopg2.extensions.TRANSACTION_STATUS_INTRANS
        assert named() == "Trial study"
        raise ValueError
    assert named() == "Trial study" and _no_transaction_open()


def test_inside_a_transaction_it_is_a_plain_atomic(study, named):
    with transaction.atomic():
        with atomic_inline() as inline:
            assert inline is None
            _rename(study, "Nested")
        assert named() == "Trial study"  # the outer transaction commits it
    assert named() == "Nested"


def test_a_connection_lost_in_the_block_is_closed_not_handed_on(study, named):
    """The server's transaction can be neither committed nor rolled back: the connection is
    closed (the server rolls back) and the next statement gets a new one."""
    killer = psycopg2.connect(**connection.get_connection_params())
    killer.autocommit = True
    try:
        for outcome in ("error", "normal end"):
            with pytest.raises(Exception) as excinfo, atomic_inline():
                _rename(study, "Lost")
                with killer.cursor() as cursor:
                    cursor.execute(
                        "SELECT pg_terminate_backend(%s)", [connection.connection.info.backend_pid]
                    )
                if outcome == "error":
                    raise ValueError("the original error")
            if outcome == "error":
                assert excinfo.type is ValueError  # not hidden by the failed rollback
            assert connection.connection is None
            assert named() == "Trial study"
    finally:
        killer.close()
    _rename(study, "Reconnected")
    assert named() == "Reconnected" and _no_transaction_open()


def test_a_block_interrupted_before_its_end_closes_the_connection(study, named, monkeypatch):
    """Interrupted after its statements and before its COMMIT or ROLLBACK (a signal, Ctrl-C):
    the transaction is neither ended nor handed on to the next request; the connection is
    closed, so the server rolls it back."""
    import surveys.inline_transaction as inline_transaction

    def interrupted(sql):
        raise KeyboardInterrupt

    monkeypatch.setattr(inline_transaction, "_end", interrupted)
    with pytest.raises(KeyboardInterrupt), atomic_inline():
        _rename(study, "Lost")
    assert connection.connection is None
    monkeypatch.undo()
    assert named() == "Trial study"
    _rename(study, "Reconnected")
    assert named() == "Reconnected" and _no_transaction_open()


def test_a_configured_isolation_level_keeps_psycopg2s_own_begin(study, named, settings):
    """psycopg2 sends the configured isolation level with the BEGIN it sends itself."""
    from django.db.backends.postgresql.psycopg_any import IsolationLevel

    options = connection.settings_dict.setdefault("OPTIONS", {})
    options["isolation_level"] = IsolationLevel.READ_COMMITTED
    try:
        with atomic_inline() as inline:
            assert inline is None
            _rename(study, "Plain atomic")
    finally:
        del options["isolation_level"]
    assert named() == "Plain atomic"

"""Reading query results into DataFrames fast, the same way on every database.

On PostgreSQL a query's rows travel as ``COPY (…) TO STDOUT WITH CSV`` and pandas' C parser
reads them: the database's own fastest way out, with no Python object per cell on the way (the
export benchmark's budget is a small multiple of ``COPY``). Elsewhere (SQLite in development
and tests) the rows are fetched and written as the same CSV text first, so both databases go
through one parser and give the same frame.

Answers are read per variable with ``answers ->> 'variable'`` (``KT``): the text of the value,
a choice list as JSON text, ``true``/``false`` for booleans, nothing for a missing key or JSON
null. ``surveys.derived.answer_text`` gives the same text for a value already in Python.
"""

import csv
import io

import pandas as pd
from django.core.exceptions import EmptyResultSet
from django.db import connection
from django.db.models import F, Lookup, QuerySet

from surveys.derived import answer_text


def _read(buffer: io.StringIO, names: list[str], text: set[str]) -> pd.DataFrame:
    buffer.seek(0)
    return pd.read_csv(
        buffer,
        header=None,
        names=names,
        dtype={name: str for name in names if name in text},
        keep_default_na=False,
        na_values=[""],
        low_memory=False,
    )


def _copy(queryset: QuerySet) -> io.StringIO:
    buffer = io.StringIO()
    try:
        sql, params = queryset.query.sql_with_params()
    except EmptyResultSet:  # e.g. ``pk__in=[]``: no rows, nothing to ask the database
        return buffer
    with connection.cursor() as cursor:
        statement = cursor.mogrify(sql, params)
        if isinstance(statement, bytes):
            statement = statement.decode()
        cursor.copy_expert(f"COPY ({statement}) TO STDOUT WITH CSV", buffer)
    return buffer


def _written(rows) -> io.StringIO:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    for row in rows:
        writer.writerow(["" if cell is None else cell for cell in row])
    return buffer


def with_ids(queryset: QuerySet, lookup: str, ids: list[int]) -> QuerySet:
    """``queryset.filter(<lookup>__in=ids)``. On PostgreSQL the ids travel as one array
    (``<lookup> = ANY(%s::bigint[])``): Django prepares every value of an ``__in`` list one by
    one, a few hundred milliseconds for an export batch of thousands of participants."""
    if connection.vendor != "postgresql" or not ids:
        return queryset.filter(**{f"{lookup}__in": ids})
    array = "{" + ",".join(str(int(pk)) for pk in ids) + "}"  # a PostgreSQL array literal
    return queryset.filter(_AnyOf(F(lookup), array))


class _AnyOf(Lookup):
    """``<lhs> = ANY(<a bigint array literal>::bigint[])``, the array one parameter."""

    lookup_name = "any_of"
    prepare_rhs = False

    def as_sql(self, compiler, connection):
        lhs, lhs_params = self.process_lhs(compiler, connection)
        return f"{lhs} = ANY(%s::bigint[])", (*lhs_params, self.rhs)


def query_frame(
    queryset: QuerySet, names: list[str], *, text: set[str] = frozenset()
) -> pd.DataFrame:
    """The rows of a ``values_list`` queryset as a frame with columns ``names``: numbers where
    a column holds only numbers, text otherwise and always for the columns in ``text``; empty
    cells (SQL NULL and empty text alike) are NaN. Dates and times arrive as ISO text."""
    if connection.vendor == "postgresql":
        return _read(_copy(queryset), names, set(text))
    rows = ([_plain(cell) for cell in row] for row in queryset.iterator(2000))
    return _read(_written(rows), names, set(text))


def _plain(cell):
    if hasattr(cell, "isoformat"):
        return cell.isoformat()
    return answer_text(cell)


def answers_frame(
    queryset: QuerySet, keys: list[str], variables: list[str], *, text: set[str]
) -> pd.DataFrame:
    """Responses as a frame: the ``keys`` columns of the queryset's model (e.g.
    ``assignment_id``), then one column per answer variable (``->>`` on PostgreSQL; the same
    text from the stored JSON elsewhere)."""
    from django.db.models.fields.json import KeyTextTransform

    names = [*keys, *variables]
    if connection.vendor == "postgresql":
        values = queryset.values_list(*keys, *(KeyTextTransform(v, "answers") for v in variables))
        return _read(_copy(values), names, set(text))
    rows = (
        [*row[:-1], *(answer_text((row[-1] or {}).get(v)) for v in variables)]
        for row in queryset.values_list(*keys, "answers").iterator(2000)
    )
    return _read(_written(rows), names, set(text))

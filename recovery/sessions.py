"""Django's database sessions, each read with one prepared statement.

Every request that carries a session cookie (each participant's page and API call, each staff
request) reads its session first. Django's store reads it through the ORM: building that query
cost more than running it, and on PostgreSQL planning it again each time cost as much again
(benchmarks/README.md, survey submission). Here the read is a plain prepared statement
(``surveys.prepared``); saving, creating, deleting and clearing are Django's.
"""

from django.contrib.sessions.backends import db
from django.db import connection
from django.utils import timezone

from surveys import prepared


class SessionStore(db.SessionStore):
    def _get_session_from_db(self):
        expire_date = self.model._meta.get_field("expire_date")
        with connection.cursor() as cursor:
            prepared.execute(
                cursor,
                "recovery_session_load",
                "SELECT session_data FROM django_session "
                "WHERE session_key = %s AND expire_date > %s",
                [self.session_key, expire_date.get_db_prep_value(timezone.now(), connection)],
            )
            row = cursor.fetchone()
        if row is None:
            self._session_key = None
            return None
        return self.model(session_key=self.session_key, session_data=row[0])

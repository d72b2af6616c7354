#!/usr/bin/env python
"""Health check of the web container: exit 0 when GET /healthz answers 200, 1 otherwise.

Run by docker compose inside the web container (standard library only, no Django import):

    python scripts/healthcheck.py

/healthz checks the database and the broker. The request goes to gunicorn on 127.0.0.1:8000 with
the first name of DJANGO_ALLOWED_HOSTS as its Host header (Django rejects unknown hosts) and with
X-Forwarded-Proto: https, as the TLS-terminating proxy would send it, so that production's HTTPS
redirect does not answer instead.
"""

import http.client
import os
import sys

HOST = "127.0.0.1"
PORT = 8000
PATH = "/healthz"
TIMEOUT_SECONDS = 5.0
DEFAULT_HOST_HEADER = "localhost"


def host_header(allowed_hosts: str | None) -> str:
    """The first usable entry of a comma-separated DJANGO_ALLOWED_HOSTS value."""
    first = (allowed_hosts or "").split(",")[0].strip()
    if first in ("", "*"):
        return DEFAULT_HOST_HEADER
    # ".example.org" allows example.org and its subdomains; the bare domain matches it.
    return first.lstrip(".") or DEFAULT_HOST_HEADER


def check(
    host: str = HOST, port: int = PORT, *, host_header_value: str, timeout: float = TIMEOUT_SECONDS
) -> tuple[bool, str]:
    """Request /healthz once; return (healthy, a short description for the log)."""
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request(
            "GET",
            PATH,
            headers={"Host": host_header_value, "X-Forwarded-Proto": "https"},
        )
        response = connection.getresponse()
        body = response.read(500).decode("utf-8", "replace")
    except (OSError, http.client.HTTPException) as exc:
        return False, f"{PATH}: {exc.__class__.__name__}: {exc}"
    finally:
        connection.close()
    return response.status == 200, f"{PATH}: HTTP {response.status} {body}"


def main() -> int:
    healthy, message = check(host_header_value=host_header(os.environ.get("DJANGO_ALLOWED_HOSTS")))
    print(message, file=sys.stdout if healthy else sys.stderr)
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())

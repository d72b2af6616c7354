"""Time-based one-time codes (RFC 6238, the codes of authenticator apps): HMAC-SHA1 over the
30-second step count, 6 digits. Written here rather than taken from a package: the whole
algorithm is the few lines below, checked against the RFC's test vectors.

A code is accepted within one step either side (a phone's clock a little off) and only once:
the step it matched is stored, and a code of that step or an earlier one is refused after."""

import base64
import hashlib
import hmac
import secrets
import struct
import time
from urllib.parse import quote, urlencode

STEP_SECONDS = 30
DIGITS = 6
WINDOW = 1  # steps accepted either side of now


def secret_new() -> str:
    """A new shared secret: 160 random bits, in base32 as apps take it."""
    return base64.b32encode(secrets.token_bytes(20)).decode().rstrip("=")


def _key(secret: str) -> bytes:
    cleaned = secret.replace(" ", "").upper()
    return base64.b32decode(cleaned + "=" * (-len(cleaned) % 8))


def code_at(secret: str, step: int, *, digits: int = DIGITS) -> str:
    """The code of one step (RFC 4226's HOTP with the step as counter)."""
    mac = hmac.new(_key(secret), struct.pack(">Q", step), hashlib.sha1).digest()
    offset = mac[-1] & 0x0F
    number = struct.unpack(">I", mac[offset : offset + 4])[0] & 0x7FFFFFFF
    return str(number % 10**digits).zfill(digits)


def step_now(now: float | None = None) -> int:
    return int((time.time() if now is None else now) // STEP_SECONDS)


def verify(secret: str, code: str, *, last_step: int = -1, now: float | None = None) -> int | None:
    """The step ``code`` matches (within ``WINDOW``, after ``last_step``), or None."""
    typed = "".join(ch for ch in str(code or "") if ch in "0123456789")  # ASCII digits only
    if len(typed) != DIGITS:
        return None
    current = step_now(now)
    for step in range(current - WINDOW, current + WINDOW + 1):
        if step > last_step and hmac.compare_digest(code_at(secret, step), typed):
            return step
    return None


def provisioning_uri(secret: str, *, account: str, issuer: str) -> str:
    """The otpauth:// address an authenticator app reads (typed in, or from a QR code)."""
    label = f"{quote(issuer, safe='')}:{quote(account, safe='')}"
    query = urlencode(
        {"secret": secret, "issuer": issuer, "digits": DIGITS, "period": STEP_SECONDS},
        quote_via=quote,
    )
    return f"otpauth://totp/{label}?{query}"


def grouped(secret: str) -> str:
    """The secret in groups of four, to type into an app."""
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))

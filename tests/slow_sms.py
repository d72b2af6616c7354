"""An SMS backend for fault drills, set as a real worker's SMS_BACKEND: the provider gets the
message at once and its answer is slow, so a test can kill the worker while it waits.

Each send writes one file to ``SLOW_SMS_DIR`` (the provider's record: what a participant's
phone would show). The first send of the folder then writes ``in-flight`` holding the sending
process's id (the test kills that process) and sleeps ``SLOW_SMS_SECONDS`` (0 when unset)
before answering; later sends answer at once (a second send, which must never happen, shows
up as a second record instead of a hang). The record comes first on purpose: the harshest
crash is the one after the message went out and before the app heard so."""

import os
import time
import uuid
from pathlib import Path

from surveys.sms import BaseSmsBackend


def sent(folder: Path) -> list[str]:
    """What the provider delivered, one text per send."""
    return sorted(p.read_text() for p in folder.glob("*.sms"))


class SlowSmsBackend(BaseSmsBackend):
    def send(self, *, to: str, body: str) -> str:
        folder = Path(os.environ["SLOW_SMS_DIR"])
        message_id = uuid.uuid4().hex
        (folder / f"{message_id}.sms").write_text(f"To: {to}\n\n{body}\n")
        if not (folder / "in-flight").exists():
            marker = folder / f"in-flight.{os.getpid()}.tmp"
            marker.write_text(str(os.getpid()))
            marker.replace(folder / "in-flight")  # whole or absent for a reader
            time.sleep(float(os.environ.get("SLOW_SMS_SECONDS", "0")))
        return message_id

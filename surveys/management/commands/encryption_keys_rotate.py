"""Re-encrypt every encrypted field under the first key of FIELD_ENCRYPTION_KEYS.

Rotation (README, "Rotating the encryption key"): put a new key first in FIELD_ENCRYPTION_KEYS,
keeping the old ones after it (every listed key decrypts, the first encrypts), restart, run this
command, then ``--check``: once it counts no value under another key, drop the old keys.
"""

from cryptography.fernet import Fernet, InvalidToken
from django.apps import apps
from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import transaction
from django.db.models import TextField, Value
from django.db.models.functions import Cast

from surveys.audit import audit_log
from surveys.fields import EncryptedTextField, field_cipher
from surveys.models import AuditEvent

BATCH = 1000


def encrypted_fields() -> list[tuple[type, list[str]]]:
    """Every model with encrypted fields, and the names of those fields."""
    found = []
    for model in apps.get_models():
        names = [f.name for f in model._meta.concrete_fields if isinstance(f, EncryptedTextField)]
        if names:
            found.append((model, names))
    return found


def under_other_keys(model, names: list[str]) -> tuple[int, list]:
    """How many stored values of the model are not encrypted under the first key, and the
    keys (pk) of rows holding a value no listed key can read."""
    first = Fernet(settings.FIELD_ENCRYPTION_KEYS[0])
    cipher = field_cipher()
    raw = {f"raw_{name}": Cast(name, TextField()) for name in names}  # the stored token
    count, unreadable = 0, []
    for pk, *row in model.objects.annotate(**raw).values_list("pk", *raw).iterator(BATCH):
        for token in row:
            if not token:
                continue
            try:
                first.decrypt(token.encode())
            except InvalidToken:
                count += 1
                try:
                    cipher.decrypt(token.encode())
                except InvalidToken:
                    unreadable.append(pk)
    return count, sorted(set(unreadable))


def rotate(model, names: list[str]) -> tuple[int, list]:
    """Re-encrypt the model's values under the first key, a batch at a time (each batch in
    its own transaction: a value is always readable, under the old key or the new one).
    Returns the number of rows rewritten and the keys (pk) of rows with a value no listed key
    reads (left as they are)."""
    cipher = field_cipher()
    raw = {f"raw_{name}": Cast(name, TextField()) for name in names}
    done, unreadable = 0, []
    pks = list(model.objects.order_by("pk").values_list("pk", flat=True))
    for start in range(0, len(pks), BATCH):
        chunk = pks[start : start + BATCH]
        with transaction.atomic():
            rows = model.objects.filter(pk__in=chunk).select_for_update()
            for pk, *tokens in rows.annotate(**raw).values_list("pk", *raw):
                try:
                    updates = {
                        name: cipher.rotate(token.encode()).decode()
                        for name, token in zip(names, tokens, strict=True)
                        if token
                    }
                except InvalidToken:
                    unreadable.append(pk)
                    continue
                if updates:
                    # the tokens go to the column as they are (an expression is not passed
                    # through the field, which would encrypt them again)
                    model.objects.filter(pk=pk).update(
                        **{
                            name: Value(token, output_field=TextField())
                            for name, token in updates.items()
                        }
                    )
                    done += 1
    return done, unreadable


class Command(BaseCommand):
    help = (
        "Re-encrypt every participant identifier under the first key of "
        "FIELD_ENCRYPTION_KEYS (after a new key was put first). --check only counts the "
        "values still under another key."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--check",
            action="store_true",
            help="Count values not encrypted under the first key; change nothing.",
        )

    def handle(self, *args, check: bool = False, **options):
        found = encrypted_fields()
        if check:
            total, lost = 0, {}
            for model, names in found:
                count, unreadable = under_other_keys(model, names)
                total += count
                self.stdout.write(f"{model._meta.label}: {count} value(s) under another key")
                if unreadable:
                    lost[model._meta.label] = unreadable
            self._unreadable(lost)
            self.stdout.write(
                "All values are under the first key: the other keys can be dropped."
                if total == 0
                else f"{total} value(s) still need the other keys: run without --check."
            )
            if total:
                raise SystemExit(1)
            return
        counts, lost = {}, {}
        for model, names in found:
            label = model._meta.label
            counts[label], unreadable = rotate(model, names)
            self.stdout.write(f"{label}: {counts[label]} row(s) re-encrypted")
            if unreadable:
                lost[label] = unreadable
        self._unreadable(lost)
        audit_log(
            action=AuditEvent.Action.KEYS_ROTATE,
            details={"rows": counts, "unreadable": {k: len(v) for k, v in lost.items()}},
        )

    def _unreadable(self, lost: dict) -> None:
        for label, pks in lost.items():
            self.stderr.write(
                f"{label}: {len(pks)} row(s) hold a value no key in FIELD_ENCRYPTION_KEYS "
                f"reads (left as they are): pk {', '.join(map(str, pks[:20]))}"
                + (" …" if len(pks) > 20 else "")
                + ". Add the key they were written with and run again."
            )

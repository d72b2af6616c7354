"""Staff's free text (contact notes, status reasons, safety alert follow-ups) encrypted at rest
like the contact details: the columns stay text; existing values become Fernet tokens under the
first key of FIELD_ENCRYPTION_KEYS. Reversible: going back decrypts them again."""

from cryptography.fernet import InvalidToken
from django.db import migrations

import surveys.fields

FIELDS = (
    ("ContactAttempt", "note"),
    ("ParticipantStatusChange", "reason"),
    ("SafetyAlert", "follow_up_note"),
)
BATCH = 500


def _rewrite(apps, change) -> None:
    """Rewrite every non-empty value with ``change(value)`` (None: leave it). Runs while the
    fields are plain text fields in the migration state, so values go in and out as stored."""
    for model_name, name in FIELDS:
        model = apps.get_model("surveys", model_name)
        rows = model.objects.exclude(**{name: ""}).only("pk", name).order_by("pk")
        changed = []
        for row in rows.iterator(chunk_size=BATCH):
            new = change(getattr(row, name))
            if new is not None:
                setattr(row, name, new)
                changed.append(row)
            if len(changed) >= BATCH:
                model.objects.bulk_update(changed, [name])
                changed = []
        if changed:
            model.objects.bulk_update(changed, [name])


def encrypt(apps, schema_editor) -> None:
    cipher = surveys.fields.field_cipher()

    def change(value: str) -> str | None:
        try:
            cipher.decrypt(value.encode())
        except InvalidToken:
            return cipher.encrypt(value.encode()).decode()
        return None  # a token already (a run cut short and started again)

    _rewrite(apps, change)


def decrypt(apps, schema_editor) -> None:
    cipher = surveys.fields.field_cipher()

    def change(value: str) -> str | None:
        try:
            return cipher.decrypt(value.encode()).decode()
        except InvalidToken:
            return None  # plain text already

    _rewrite(apps, change)


class Migration(migrations.Migration):
    dependencies = [
        ("surveys", "0027_dataset_line_plan_recipe"),
    ]

    # The data first, while the fields are still plain text fields in the migration state (the
    # encrypted field would try to decrypt plain text on reading, and encrypt tokens again on
    # writing); backwards, the fields go back to plain text first, then the data.
    operations = [
        migrations.RunPython(encrypt, decrypt),
        migrations.AlterField(
            model_name="contactattempt",
            name="note",
            field=surveys.fields.EncryptedTextField(blank=True),
        ),
        migrations.AlterField(
            model_name="participantstatuschange",
            name="reason",
            field=surveys.fields.EncryptedTextField(blank=True),
        ),
        migrations.AlterField(
            model_name="safetyalert",
            name="follow_up_note",
            field=surveys.fields.EncryptedTextField(blank=True),
        ),
    ]

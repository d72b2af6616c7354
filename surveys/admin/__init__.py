"""The staff admin. Every list is narrowed by the selectors to what the user's roles allow."""

# Importing the modules registers their ModelAdmins with the admin site.
from surveys.admin import (  # noqa: F401
    consent,
    diary,
    exports,
    instruments,
    messages,
    participants,
    records,
    staff,
    studies,
    tokens,
    users,
)

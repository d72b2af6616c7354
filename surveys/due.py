"""Which surveys are *due*, and the completion rate: one definition for the coordinators'
retention dashboard (``surveys.retention``, its page and API) and the researchers' retention
table (``recovery.analysis.descriptives.retention_by_wave``), with the words both pages show.

A survey is **due** when the participant owed it and its outcome is known: it was completed,
or its window closed without a response (missed). Not due:

* open or in progress: still in its window, the outcome not known yet; shown apart ("in window
  now", the dataset's ``open``) and counted when it is completed or missed, so a wave under way
  is not understated;
* not yet open (the dataset's ``not_yet_due``);
* cancelled: the participant withdrew, died or finished the study before answering
  (``services.participant_status_change``). Nobody can chase it and it was never owed. A
  participant lost to follow-up is not cancelled: their surveys keep falling due and are missed.

**Completion rate** = completed ÷ due.

The statuses are the dataset's ``status`` column (``surveys.datasets.codes.ROW_STATUSES``, which
maps each assignment status to one of them), the vocabulary a researcher's file has. Nothing
here imports Django: the analysis package reads this module too, and runs without Django.
"""

# The dataset's row statuses that are due; the rest (open, not_yet_due, cancelled) are not.
DUE_ROW_STATUSES: tuple[str, ...] = ("completed", "missed")
COMPLETED_ROW_STATUS = "completed"

# What both pages say, word for word: (term, definition).
DEFINITIONS: tuple[tuple[str, str], ...] = (
    (
        "Due",
        "Surveys the participant owed whose outcome is known: completed, or missed (the window "
        "closed without a response). Not counted: surveys still in their window (shown apart "
        "until they are completed or missed, so a wave under way is not understated), surveys "
        "whose window has not opened, and cancelled ones (the participant withdrew, died or "
        "finished the study; a participant lost to follow-up is not cancelled).",
    ),
    ("Completion rate", "Completed ÷ due."),
)

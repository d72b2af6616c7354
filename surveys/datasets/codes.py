"""Missing-value codes of the research datasets (``surveys.datasets``).

Every item and derived-measure cell of a dataset holds either a value or one of these codes, so
that a researcher can tell *why* a value is absent. Codes are negative numbers in the -9x range:
no item of the built-in battery accepts a negative value (counts, sliders and ages start at 0
or above; choice codes are positive), so a code never collides with a real answer there. A
study's own questions can: a choice coded -99 "Refused", an answer allowed below -92, a
calculation that can go that low, a date before enrolment (days since enrolment), free text.
Such a column has its codes in a column of its own, ``<name>_missing``, and its empty cells stay
empty (``surveys.datasets.plan``; the codebook says so in the column's row).

Cells outside this scheme are left empty (NaN / blank in a CSV):

* the row's questionnaire does not contain the variable (another wave's instrument, or a
  version of the instrument without that item or choice);
* a derived measure that cannot be computed from the answers given (its function returns
  nothing: e.g. the share of online meetings when there were none);
* the timing and version columns of a row without a submitted response.
"""

WAVE_MISSED = -99
NOT_YET_DUE = -98
NOT_SHOWN = -97
NOT_ANSWERED = -96
WINDOW_OPEN = -95
CANCELLED = -94
NOT_CALCULATED = -93
ERASED = -92

MISSING_CODES: dict[int, str] = {
    WAVE_MISSED: "Wave missed: the window closed without a submitted response",
    NOT_YET_DUE: "Not yet due: the wave's window has not opened",
    NOT_SHOWN: "Not shown: hidden by branching logic",
    NOT_ANSWERED: "Shown but not answered",
    WINDOW_OPEN: "Window open: not submitted yet",
    CANCELLED: "Cancelled: the participant left the study (withdrew, died) before this wave",
    NOT_CALCULATED: "Could not be calculated: a calculated item shown but left blank (an answer "
    "its formula needs is missing, or the result was not a usable number)",
    ERASED: "Erased: answered, then deleted at the participant's request (on withdrawal)",
}

LOWEST_CODE, HIGHEST_CODE = min(MISSING_CODES), max(MISSING_CODES)
CODE_TEXTS = frozenset(str(code) for code in MISSING_CODES)

# The cell code of every instrument of a row without a submitted response, by assignment status.
STATUS_CODES: dict[str, int] = {
    "scheduled": NOT_YET_DUE,
    "open": WINDOW_OPEN,
    "in_progress": WINDOW_OPEN,
    "missed": WAVE_MISSED,
    "cancelled": CANCELLED,
    # Completed but this instrument has no submitted response: its answers were erased at the
    # participant's request (``ERASED``, set where the participant's were: the builder); else
    # it should not happen (a wave is completed when all its instruments are submitted).
    "completed": NOT_ANSWERED,
}

# The ``status`` column: the assignment status as the dataset reports it.
ROW_STATUSES: dict[str, str] = {
    "scheduled": "not_yet_due",
    "open": "open",
    "in_progress": "open",
    "completed": "completed",
    "missed": "missed",
    "cancelled": "cancelled",
}
ROW_STATUS_LABELS: dict[str, str] = {
    "completed": "Completed (every instrument submitted)",
    "missed": "Missed (the window closed)",
    "not_yet_due": "Not yet due (the window has not opened)",
    "open": "Open (window open, not completed yet; started or not)",
    "cancelled": "Cancelled (the participant left the study)",
}

"""Research datasets: one data path from responses to every export and analysis.

``dataset_long`` builds the one tidy long frame (participant × wave, with every item, the
derived measures and baseline covariates); ``dataset_wide`` pivots it; ``dataset_diary`` is the
meeting diary's long table; ``csv_rows`` streams any of them as CSV and ``codebook`` describes
their columns. Never a second code path that computes the same variable.

De-identified by design: ``pid`` is a keyed hash (``surveys.datasets.pid``), never the study ID
or a primary key; no contact detail is read; identifiers (items marked as such in any version
of their instrument) and free text are left out unless asked for; dates are days since
enrolment.

Missing codes (``MISSING_CODES``; cells of items and derived measures):

    -99  wave missed: the window closed without a submitted response
    -98  not yet due: the wave's window has not opened
    -97  not shown: the item was hidden by its branching logic
    -96  shown but not answered
    -95  window open: not submitted yet
    -94  cancelled: the participant left the study before this wave
    -93  not calculated: a calculated item shown but blank (its formula lacked an answer, or
         gave no usable number)
    -92  erased: answered, then deleted at the participant's request (on withdrawal)

An empty cell means "not part of the questionnaire this row answered" (another wave's
instrument, another version) or, for a derived measure, "not computable from the answers".

A column whose own values could be one of these numbers (a choice coded -99 "Refused", an
answer allowed below -92, a calculation that can reach them, a date as days since enrolment,
free text) keeps its empty cells empty and has its codes in the next column, ``<name>_missing``
(``plan.Plan.missing_of``), so that an answer never reads as a code nor a code as an answer.
The engine knows nothing about recovery research: derived measures come from the registry in
``surveys.derived``, which apps fill at start-up.
"""

from surveys.datasets.builder import dataset_long
from surveys.datasets.codes import (
    CANCELLED,
    MISSING_CODES,
    NOT_ANSWERED,
    NOT_CALCULATED,
    NOT_SHOWN,
    NOT_YET_DUE,
    WAVE_MISSED,
    WINDOW_OPEN,
)
from surveys.datasets.diary import dataset_diary
from surveys.datasets.pid import pseudonymous_id
from surveys.datasets.shapes import dataset_wide
from surveys.datasets.writers import codebook, csv_rows

__all__ = [
    "CANCELLED",
    "MISSING_CODES",
    "NOT_ANSWERED",
    "NOT_CALCULATED",
    "NOT_SHOWN",
    "NOT_YET_DUE",
    "WAVE_MISSED",
    "WINDOW_OPEN",
    "codebook",
    "csv_rows",
    "dataset_diary",
    "dataset_long",
    "dataset_wide",
    "pseudonymous_id",
]

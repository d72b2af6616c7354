"""The meeting diary as a dataset: one row per logged meeting.

The rows are ``surveys.selectors.diary_entries_table`` (the same table as the admin's diary CSV),
with the study ID replaced by the dataset's pseudonymous ``pid`` so it joins the long and wide
frames: ``pid``, ``site``, ``group`` and ``format`` (codes) with their labels, ``occurred_day``
(the meeting's day) and ``logged_day`` (the day it was logged), both as days since enrolment.
"""

from datetime import timedelta

import pandas as pd
from django.db.models import QuerySet

from surveys import diary, selectors
from surveys.datasets.builder import INTEGER, STRING, participants_in
from surveys.datasets.pid import date_offset, export_pid
from surveys.models import Participant, Study

DIARY_COLUMNS = ("pid", *selectors.DIARY_TABLE_COLUMNS[1:])
_LABELS = {
    "pid": "Participant ID (pseudonymous unless the study's setting is the study ID)",
    "site": "Site code",
    "group": "Group (fellowship) of the meeting",
    "group_label": "Group (fellowship) of the meeting, label",
    "format": "Format of the meeting",
    "format_label": "Format of the meeting, label",
    "occurred_day": "Day of the meeting (days since enrolment)",
    "logged_day": "Day the meeting was logged (days since enrolment, participant's local day)",
    "occurred_on": "Day of the meeting (date-shifted: moved back by the participant's offset)",
}


def dataset_diary(
    *,
    study: Study,
    participants: QuerySet[Participant] | None = None,
    language: str = "en",
    date_shift: bool = False,
) -> pd.DataFrame:
    """Two queries whatever the number of entries: the participants' pids, then the table.
    ``date_shift`` adds ``occurred_on``, the meeting's calendar day moved back by the
    participant's date offset (the same as in the long dataset)."""
    if selectors.DIARY_TABLE_COLUMNS[0] != "study_id":  # the table's shape is relied on here
        raise AssertionError("diary_entries_table no longer starts with the study ID")
    pids, shifts, enrolled = {}, {}, {}
    for pk, code, day in participants_in(study, participants).values_list(
        "pk", "code", "enrolled_on"
    ):
        pids[code] = export_pid(study, participant_id=pk, code=code)
        enrolled[pids[code]] = day
        if date_shift:
            shifts[pids[code]] = date_offset(study_id=study.pk, participant_id=pk)
    rows = [
        (pids[code], *rest)
        for code, *rest in selectors.diary_entries_table(
            study=study, participants=participants, language=language
        )
        if code in pids
    ]
    records = list(zip(*rows, strict=True)) if rows else [()] * len(DIARY_COLUMNS)
    frame = pd.DataFrame(
        {
            name: pd.array(list(values), dtype=INTEGER if name.endswith("_day") else STRING)
            for name, values in zip(DIARY_COLUMNS, records, strict=True)
        }
    )
    frame = frame.sort_values(["pid", "occurred_day", "logged_day"], kind="stable")
    frame = frame.reset_index(drop=True)
    names = list(DIARY_COLUMNS)
    if date_shift:
        frame["occurred_on"] = pd.array(
            [
                (enrolled[pid] + timedelta(days=int(day) - shifts[pid])).isoformat()
                for pid, day in zip(frame["pid"], frame["occurred_day"], strict=True)
            ],
            dtype=STRING,
        )
        names.append("occurred_on")
    values = {
        "group": dict(diary.group_choices(language)),
        "format": dict(diary.format_choices(language)),
    }
    frame.attrs["columns"] = {
        name: {
            "name": name,
            "label": _LABELS[name],
            "dtype": INTEGER if name.endswith("_day") else STRING,
            "role": "id" if name in ("pid", "site") else "diary",
            "values": values.get(name, {}),
            "missing_codes": False,
        }
        for name in names
    }
    frame.attrs["dataset"] = {"shape": "diary", "study": study.slug}
    return frame

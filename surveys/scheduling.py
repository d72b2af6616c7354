"""Wave windows in the participant's own time zone.

A wave is due on the calendar day ``enrolled_on + offset_days`` *where the participant lives*.
Its window opens at local midnight ``window_before_days`` earlier and closes at the local midnight
that ends the day ``window_after_days`` later. Local wall-clock times are turned into absolute
instants with zoneinfo, so a window that spans a DST change keeps its local midnights.
"""

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

# How late a message may still go: a late plan catches up with the latest past moment within
# this (``surveys.reminders.reminders_plan``), and the dispatcher skips a message claimed later
# than this after its time (an outage, a message left in the queue).
CATCH_UP_LIMIT = timedelta(days=1)


@dataclass(frozen=True)
class Window:
    opens_at: datetime
    due_at: datetime
    closes_at: datetime


def local_midnight(day: date, tz: ZoneInfo) -> datetime:
    """The first instant of ``day`` in ``tz``, in UTC."""
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)


def wave_due_day(
    *, enrolled_on: date, offset_days: int, recurrence_days: int | None = None, occurrence: int = 0
) -> date:
    return enrolled_on + timedelta(days=offset_days + occurrence * (recurrence_days or 0))


def wave_window(
    *,
    enrolled_on: date,
    timezone_name: str,
    offset_days: int,
    window_before_days: int,
    window_after_days: int,
    recurrence_days: int | None = None,
    occurrence: int = 0,
) -> Window:
    tz = ZoneInfo(timezone_name)
    due_day = wave_due_day(
        enrolled_on=enrolled_on,
        offset_days=offset_days,
        recurrence_days=recurrence_days,
        occurrence=occurrence,
    )
    return Window(
        opens_at=local_midnight(due_day - timedelta(days=window_before_days), tz),
        due_at=local_midnight(due_day, tz),
        closes_at=local_midnight(due_day + timedelta(days=window_after_days + 1), tz),
    )

"""Schedules: 5-field cron (UTC) and rate() expressions, checked once and translated for EventBridge.

Used by the validate rules (is it valid?) and the plan (what EventBridge and GitHub Actions receive).
"""

from __future__ import annotations

import re
from typing import NamedTuple

from pipec.diagnostics import quote

_MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
_DAYS = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]
_FIELDS = [("minute", 0, 59, []), ("hour", 0, 23, []), ("day of month", 1, 31, []),
           ("month", 1, 12, _MONTHS), ("day of week", 0, 7, _DAYS)]
_SPACED = re.compile(r"[^\s]+( [^\s]+)*")  # GitHub and EventBridge read the text as it is: no tab, no newline
_RATE = re.compile(r"rate\((?P<n>[1-9][0-9]{0,4}) (?P<unit>minute|minutes|hour|hours|day|days)\)")


class ScheduleError(ValueError):
    """A schedule that cannot be used, with a hint."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


class Cron(NamedTuple):
    minute: str
    hour: str
    day_of_month: str
    month: str
    day_of_week: str

    def eventbridge(self) -> str:
        """The same schedule as an EventBridge `cron(...)` expression (days of week as names)."""
        dom, dow = self.day_of_month, self.day_of_week
        if dow == "*":
            dow = "?"
        else:
            dom = "?"
            dow = ",".join(_DAYS[d % 7] for d in sorted({d % 7 for d in _expand(dow, 0, 7, _DAYS)}))
        return f"cron({self.minute} {self.hour} {dom} {self.month} {dow} *)"


def parse_cron(text: str) -> Cron:
    """Parse a 5-field cron expression, raising ScheduleError that names the bad field."""
    if not _SPACED.fullmatch(text):
        raise ScheduleError(f"{quote(text)} must be fields separated by single spaces, with nothing before or "
                            "after them", 'e.g. "*/30 * * * *" for every 30 minutes, in UTC')
    parts = text.split(" ")
    if len(parts) != 5:
        raise ScheduleError(f'"{text}" has {len(parts)} fields; cron takes 5 (minute hour day month weekday)',
                            'e.g. "*/30 * * * *" for every 30 minutes, in UTC')
    for part, (name, low, high, names) in zip(parts, _FIELDS, strict=True):
        try:
            _expand(part, low, high, names)
        except ValueError as exc:
            raise ScheduleError(f'the {name} field "{part}" of "{text}" is not valid: {exc}') from None
    if parts[2] != "*" and parts[4] != "*":
        raise ScheduleError(f'"{text}" restricts both the day of month and the day of week',
                            "EventBridge and most people read that differently; keep one of them *")
    return Cron(*parts)


def check_schedule(text: str, *, allow_rate: bool) -> None:
    """Raise ScheduleError unless text is a valid cron (or, where allowed, a rate expression)."""
    if text.startswith("rate("):
        if not allow_rate:
            raise ScheduleError("rate(...) is not available here", 'write a cron such as "*/30 * * * *"')
        if not _RATE.fullmatch(text):
            raise ScheduleError(f'"{text}" is not a valid rate', 'e.g. "rate(5 minutes)" or "rate(1 hour)"')
        return
    parse_cron(text)


def eventbridge(text: str) -> str:
    """EventBridge ScheduleExpression for a checked schedule."""
    return text if text.startswith("rate(") else parse_cron(text).eventbridge()


def _expand(field: str, low: int, high: int, names: list[str]) -> set[int]:
    values: set[int] = set()
    for item in field.split(","):
        values |= _expand_item(item, low, high, names)
    return values


def _expand_item(item: str, low: int, high: int, names: list[str]) -> set[int]:
    base, _, step_text = item.partition("/")
    step = _number(step_text, 1, high, []) if step_text else 1
    if base == "*":
        start, end = low, high
    elif "-" in base:
        first, last = base.split("-", 1)
        start, end = _number(first, low, high, names), _number(last, low, high, names)
        if start > end:
            raise ValueError(f"the range {base} runs backwards")
    else:
        start = _number(base, low, high, names)
        end = high if step_text else start
    return set(range(start, end + 1, step))


def _number(text: str, low: int, high: int, names: list[str]) -> int:
    upper = text.upper()
    if upper in names:
        return names.index(upper) + (1 if names is _MONTHS else 0)
    if not text.isdigit():
        raise ValueError(f'"{text}" is not a number' + (f" or one of {', '.join(names)}" if names else ""))
    value = int(text)
    if not low <= value <= high:
        raise ValueError(f"{value} is outside {low}-{high}")
    return value

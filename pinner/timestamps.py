"""Instants as integer nanoseconds since the epoch, and the ``--before WHEN`` forms.

Chainguard's history carries timestamps with 0 to 9 fraction digits; a datetime
keeps only microseconds, so two builds 100 ns apart would compare equal. Integer
nanoseconds keep the order exact.
"""

from __future__ import annotations

import math
import re
import time
from typing import NamedTuple

from pinner.errors import UsageError

NS = 1_000_000_000
# Patterns, not compiled ones: re compiles (and caches) each on its first use, which the
# offline check never makes; compiling them at import cost every start-up ~1 ms.
_RFC3339 = (
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,9}))?"
    r"(?:([Zz])|([+-])([0-9]{2}):([0-9]{2}))"
)
# ASCII digits only: \d would also take "٢" and "²".
_DATE = r"([0-9]{4})-([0-9]{2})-([0-9]{2})"
_AGE = r"([0-9]{1,12})([smhdw])"
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_rfc3339(text: str) -> int | None:
    """Nanoseconds since the epoch for an RFC 3339 timestamp, or None if it is not one."""
    # No strip(): a registry's padded timestamp is not what the API promises. User input is
    # stripped by its own reader (parse_when).
    match = re.fullmatch(_RFC3339, text)
    if match is None:
        return None
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    import calendar  # registry timestamps only: not for the offline check
    import datetime

    try:
        seconds = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
        # timegm accepts day 31 of February; make sure the date exists. (Not time.strptime:
        # its module and locale cost ~4 ms of a network run's start-up, and ~50 us a call.)
        datetime.date(year, month, day)
    except (ValueError, OverflowError):
        return None
    if hour > 23 or minute > 59 or second > 60:
        return None
    fraction = int((match.group(7) or "").ljust(9, "0"))
    if match.group(9) and (int(match.group(10)) > 23 or int(match.group(11)) > 59):
        return None  # RFC 3339 5.6: time-numoffset is at most 23:59
    if match.group(9):
        offset = (int(match.group(10)) * 60 + int(match.group(11))) * 60
        seconds -= offset if match.group(9) == "+" else -offset
    return seconds * NS + fraction


def format_instant(ns: int) -> str:
    """``2023-05-12T20:50:19Z``: an instant for people and for ``start=``/``end=``."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ns // NS))


# A NamedTuple, not a frozen dataclass: as immutable and compared by value, and each
# dataclass costs ~1 ms of every start-up to build (an offline check is ~0.1 s in all).
class Cutoff(NamedTuple):
    """``--before``: the newest build at or before ``ns`` wins; ``label`` is what the user said."""

    ns: int
    label: str
    cooldown: bool = False  # given as an age (7d): "at least this old", which must not block


def parse_timeout(text: str, least: float, most: float) -> float:
    """``--timeout SECONDS``: a number from *least* to *most* (so not nan, not inf)."""
    try:
        seconds = float(text.strip())
    except ValueError:
        seconds = math.nan
    if not least <= seconds <= most:  # false for nan too
        raise UsageError(
            f"--timeout {text!r}: expected a number of seconds from {least:g} to {most:g}"
        )
    return seconds


def parse_duration(text: str, option: str) -> int:
    """Nanoseconds in a duration like ``7d``, ``12h``, ``2w``, ``30m``, ``90s``."""
    match = re.fullmatch(_AGE, text.strip())
    if match is None:
        raise UsageError(f"{option} {text!r}: expected a duration such as 7d, 12h or 2w")
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)] * NS


def parse_when(text: str, *, now_ns: int | None = None) -> Cutoff:
    """Read ``--before WHEN``: a UTC date (the whole day), an RFC 3339 instant, or an age."""
    value = text.strip()
    now = time.time_ns() if now_ns is None else now_ns
    date = re.fullmatch(_DATE, value)
    if date is not None:
        start = parse_rfc3339(f"{value}T00:00:00Z")
        if start is None:
            raise UsageError(f"--before {text!r}: no such date")
        # A date covers that whole day, UTC: everything before the next midnight.
        return Cutoff(start + 86400 * NS - 1, f"{value} (end of day, UTC)")
    instant = parse_rfc3339(value)
    if instant is not None:
        return Cutoff(instant, value)
    age = re.fullmatch(_AGE, value)
    if age is not None:
        seconds = int(age.group(1)) * _UNIT_SECONDS[age.group(2)]
        cut = now - seconds * NS
        try:
            return Cutoff(cut, f"{value} ago ({format_instant(cut)})", cooldown=True)
        except (OverflowError, OSError, ValueError):
            raise UsageError(f"--before {text!r}: that is before any build could exist") from None
    raise UsageError(
        f"--before {text!r}: expected a date (2023-05-12), an RFC 3339 time"
        " (2023-05-12T14:00:00Z) or an age (7d, 12h, 2w)"
    )

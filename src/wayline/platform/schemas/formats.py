"""String formats, checked the same way on the fast path (fastjsonschema) and the slow path (jsonschema).

Both libraries get these same functions. Otherwise they would disagree (jsonschema skips `date-time`
unless an optional package is installed), and a record could be refused without a reason to show.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:\S*$")
_URI_REF = re.compile(r"^\S*$")
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def is_date_time(value: str) -> bool:
    """RFC 3339 date-time (ISO 8601 with a time zone), with real calendar dates."""
    if not _DATE_TIME.match(value):
        return False
    try:
        datetime.fromisoformat(value.replace("t", "T").replace("z", "Z"))
    except ValueError:
        return False
    return True


def is_date(value: str) -> bool:
    if not _DATE.match(value):
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


def _ip(version: int) -> Callable[[str], bool]:
    def check(value: str) -> bool:
        try:
            return ipaddress.ip_address(value).version == version
        except ValueError:
            return False

    return check


FORMATS: dict[str, Callable[[str], bool]] = {
    "date-time": is_date_time,
    "date": is_date,
    "email": lambda v: bool(_EMAIL.match(v)),
    "uri": lambda v: bool(_URI.match(v)),
    "uri-reference": lambda v: bool(_URI_REF.match(v)),
    "uuid": lambda v: bool(_UUID.match(v)),
    "ipv4": _ip(4),
    "ipv6": _ip(6),
}


def format_checker() -> Any:
    """A jsonschema FormatChecker with exactly these formats (and none of its own)."""
    from jsonschema import FormatChecker

    checker = FormatChecker(formats=())
    for name, fn in FORMATS.items():
        checker.checks(name)(_strings_only(fn))
    return checker


def _strings_only(fn: Callable[[str], bool]) -> Callable[[Any], bool]:
    # A format constrains strings only; jsonschema calls the checker for every instance type.
    return lambda value: not isinstance(value, str) or fn(value)

"""Reading CHQ's standard export request: Filters, SortDescriptions, Top, Skip,
Settings and the caller's ApiDocumentId, with every mistake reported at its
path in a ModelState, as CHQ's 400 answer does.

The reference writes the request two ways: inside `Data` (every example) and
as a bare `{"ApiDocumentId", "Request"}` (the standard formats table); both are
read. Operators are matched without regard to case, spaces or underscores, so
"Notequal", "NotEqual", "Not equal" and "Greater than or equal" are all read.
"""

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ..guard.parsing import InvalidRequest
from ..text import printable

PREFIX = "apiRequest.Data"
# Beyond any table this holds, and inside every database's 64-bit OFFSET.
MAX_ROWS = 2**31 - 1

# How much one request may ask, checked here, before any database is asked. Each filter is a
# condition the database evaluates on every row and each listed value a term of it: unbounded,
# a 425 KB body held a worker past gunicorn's 30 s timeout on PostgreSQL, and on SQLite 1,200
# terms passed its "Expression tree is too large (maximum depth 1000)" (a DatabaseError, so
# answered 503 "cannot be reached"). 50 filters is far past real use (API Document Export has
# three filter fields, two or three operators each) and 100 values a long list to type; the
# largest allowed request is 5,000 values, at most about 25,000 query parameters (a name is
# looked for in two columns, in up to two case folds), inside SQLite's default 32,766 and
# PostgreSQL's 65,535, and answered in about 0.1 s (1,000 documents, on either database).
MAX_FILTERS = 50  # items in Filters, and in each of SortDescriptions and Settings
MAX_VALUES = 100  # values in one Contains filter's comma-separated list
# Every id and count here fits a signed 64-bit integer, the largest every database stores; a
# longer run of digits is never read: int() refuses more than 4,300 digits (ValueError) and
# SQLite a number past 64 bits (OverflowError), both 500s before this bound.
MAX_ID = 2**63 - 1
MAX_DIGITS = len(str(MAX_ID))

OPERATORS = {
    name.lower(): name
    for name in ("Equal", "Notequal", "Greaterthan", "Greaterthanorequal", "Lessthan", "Lessthanorequal", "Contains")
}
DIRECTIONS = {"ascending": False, "descending": True}


@dataclass(frozen=True)
class Filter:
    field: str
    operator: str
    value: Any
    path: str  # where the value is, for a ModelState entry about it


@dataclass(frozen=True)
class Sort:
    name: str
    descending: bool


@dataclass
class ExportRequest:
    filters: list[Filter] = field(default_factory=list)
    sorts: list[Sort] = field(default_factory=list)
    top: int | None = None
    skip: int = 0
    settings: dict[str, str] = field(default_factory=dict)

    def records_count(self, total: int) -> int:
        """RecordsCount from TotalRecords, Skip and Top, as the reference's four examples count."""
        count = max(0, total - self.skip)
        return count if self.top is None else min(count, self.top)


def data_of(body: Any) -> dict[str, Any]:
    """The request's `Data` group, or the body itself when it has none."""
    if not isinstance(body, dict):
        return {}
    data = body.get("Data", body)
    return data if isinstance(data, dict) else {}


def operator_name(raw: Any) -> str | None:
    if not isinstance(raw, str):
        return None
    return OPERATORS.get(re.sub(r"[\s_]", "", raw).lower())


def document_id(body: Any) -> uuid.UUID | None:
    """The caller's ApiDocumentId, when it sent one."""
    raw = data_of(body).get("ApiDocumentId")
    if raw is None or raw == "":
        return None
    try:
        if not isinstance(raw, str):
            raise ValueError
        return uuid.UUID(raw.strip())
    except ValueError:
        raise InvalidRequest(
            {
                f"{PREFIX}.ApiDocumentId": [
                    f"{printable(raw, 60)!r} is not a GUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)."
                ]
            }
        ) from None


def whole_number(text: str, maximum: int = MAX_ID) -> int | None:
    """`text` (ASCII digits, spaces around them allowed) as a number from 0 to `maximum`, else None.
    Its length is checked before int() reads it (see MAX_DIGITS)."""
    text = text.strip()
    if not (text.isascii() and text.isdigit()) or len(text) > MAX_DIGITS:
        return None
    number = int(text)
    return number if number <= maximum else None


def _whole(raw: Any, path: str, errors: dict[str, list[str]]) -> int | None:
    if raw is None:
        return None
    number = whole_number(raw, MAX_ROWS) if isinstance(raw, str) else raw
    if isinstance(number, bool) or not isinstance(number, int) or not 0 <= number <= MAX_ROWS:
        errors[path] = [f"{printable(raw, 40)!r} is not a whole number from 0 to {MAX_ROWS}."]
        return None
    return number


def _list(raw: Any, path: str, errors: dict[str, list[str]]) -> list:
    if raw is None:
        return []
    if not isinstance(raw, list):
        errors[path] = ["Must be an array."]
        return []
    if len(raw) > MAX_FILTERS:
        # One error for the array, not one per item: its items are not read at all.
        errors[path] = [f"At most {MAX_FILTERS} items; {len(raw)} were sent."]
        return []
    return raw


def _objects(raw: Any, path: str, errors: dict[str, list[str]], fields: str) -> Iterator[tuple[str, dict]]:
    """(path, item) for each object of a request's array; anything else is an error at its path."""
    for n, item in enumerate(_list(raw, path, errors)):
        if isinstance(item, dict):
            yield f"{path}[{n}]", item
        else:
            errors[f"{path}[{n}]"] = [f"Must be an object with {fields}."]


def parse(body: Any, *, filters: dict[str, set[str]], sorts: set[str]) -> ExportRequest:
    """Read the export request against one API's filters (field -> operators) and sort fields."""
    errors: dict[str, list[str]] = {}
    data = data_of(body)
    request = data.get("Request")
    path = f"{PREFIX}.Request"
    if request is None:
        request = {}
    if not isinstance(request, dict):
        raise InvalidRequest({path: ["Must be an object with Filters, SortDescriptions, Top and Skip."]})
    fields_by_name = {name.lower(): name for name in filters}
    sorts_by_name = {name.lower(): name for name in sorts}
    result = ExportRequest()

    for here, item in _objects(request.get("Filters"), f"{path}.Filters", errors, "Field, Operator and Value"):
        name = fields_by_name.get(str(item.get("Field", "")).lower())
        if name is None:
            known = ", ".join(filters) or "none"
            errors[f"{here}.Field"] = [f"{printable(item.get('Field'), 60)!r} cannot be filtered on; fields: {known}."]
            continue
        operator = operator_name(item.get("Operator", "Equal"))
        if operator is None or operator not in filters[name]:
            allowed = ", ".join(sorted(filters[name]))
            errors[f"{here}.Operator"] = [
                f"{printable(item.get('Operator'), 40)!r} is not an operator for {name}; use {allowed}."
            ]
            continue
        value = item.get("Value")
        if operator == "Contains" and isinstance(value, str) and value.count(",") >= MAX_VALUES:
            errors[f"{here}.Value"] = [f"At most {MAX_VALUES} values in a list; {value.count(',') + 1} were sent."]
            continue
        result.filters.append(Filter(name, operator, value, f"{here}.Value"))

    for here, item in _objects(
        request.get("SortDescriptions"), f"{path}.SortDescriptions", errors, "Name and Direction"
    ):
        name = sorts_by_name.get(str(item.get("Name", "")).lower())
        if name is None:
            known = ", ".join(sorted(sorts)) or "none"
            errors[f"{here}.Name"] = [f"{printable(item.get('Name'), 60)!r} cannot be sorted on; fields: {known}."]
            continue
        raw = item.get("Direction", "Ascending")
        direction = DIRECTIONS.get(raw.strip().lower()) if isinstance(raw, str) else None
        if direction is None:
            errors[f"{here}.Direction"] = [
                f"Error converting value {printable(raw, 40)!r} to a sort direction; use Ascending or Descending."
            ]
            continue
        result.sorts.append(Sort(name, direction))

    for here, item in _objects(request.get("Settings"), f"{path}.Settings", errors, "Key and Value"):
        if isinstance(item.get("Key"), str):
            result.settings[item["Key"]] = item.get("Value")
        else:
            errors[f"{here}.Key"] = ["Must be the name of a setting."]

    result.top = _whole(request.get("Top"), f"{path}.Top", errors)
    result.skip = _whole(request.get("Skip"), f"{path}.Skip", errors) or 0
    if errors:
        raise InvalidRequest(errors)
    return result

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

from ..text import printable

PREFIX = "apiRequest.Data"
# Beyond any table this holds, and inside every database's 64-bit OFFSET.
MAX_ROWS = 2**31 - 1

OPERATORS = {
    name.lower(): name
    for name in ("Equal", "Notequal", "Greaterthan", "Greaterthanorequal", "Lessthan", "Lessthanorequal", "Contains")
}
DIRECTIONS = {"ascending": False, "descending": True}


class InvalidRequest(Exception):
    """The request cannot be carried out; `model_state` maps each bad path to its messages."""

    def __init__(self, model_state: dict[str, list[str]]):
        super().__init__(model_state)
        self.model_state = model_state


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


def _whole(raw: Any, path: str, errors: dict[str, list[str]]) -> int | None:
    if raw is None:
        return None
    if isinstance(raw, str) and raw.strip().isascii() and raw.strip().isdigit():
        raw = int(raw.strip())
    if isinstance(raw, bool) or not isinstance(raw, int) or not 0 <= raw <= MAX_ROWS:
        errors[path] = [f"{printable(raw, 40)!r} is not a whole number from 0 to {MAX_ROWS}."]
        return None
    return raw


def _list(raw: Any, path: str, errors: dict[str, list[str]]) -> list:
    if raw is None:
        return []
    if not isinstance(raw, list):
        errors[path] = ["Must be an array."]
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
        result.filters.append(Filter(name, operator, item.get("Value"), f"{here}.Value"))

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

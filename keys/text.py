"""Text from callers, made safe for the two places it goes: the database and the logs.

Callers send anything: lone UTF-16 surrogates (valid in a Python str from
JSON's "\\ud800", but not encodable as UTF-8), NUL (PostgreSQL text cannot
hold it), strings longer than their column, and CR/LF or escape sequences
that would forge lines in a log file.
"""

import re
from datetime import datetime

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
# C0 and C1 controls and DEL; a log line must stay one line that says what came in.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def storable(text: str, limit: int | None = None) -> str:
    """`text` as every supported database stores it: NUL and lone surrogates
    become U+FFFD, and the result is cut to `limit` characters."""
    # Most text is ASCII: it can hold no surrogate, and one scan for NUL decides (a logged
    # call makes a dozen of these, before its answer leaves).
    if not text.isascii() or "\x00" in text:
        text = _UNSTORABLE.sub("\ufffd", text)
    return text[:limit] if limit is not None else text


def storable_text(value: bytes | str, limit: int | None = None) -> str:
    """A caller's bytes (decoded as UTF-8, bad bytes replaced) or text, made storable."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    return storable(value, limit)


def printable(text: object, limit: int = 300) -> str:
    """`text` for a log line: control characters escaped (\\n, \\x1b, ...), cut to `limit`."""
    text = str(text)[:limit]
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape", "backslashreplace").decode("ascii"), text)


def time_left(moment: datetime, at: datetime) -> str:
    """How long until `moment` (after `at`), in the pane's words: "in 3 days", "in 5 hours",
    "within the hour"."""
    left = moment - at
    if left.days >= 1:
        return f"in {left.days} day{'s' if left.days > 1 else ''}"
    hours = int(left.total_seconds() // 3600)
    if hours >= 1:
        return f"in {hours} hour{'s' if hours > 1 else ''}"
    return "within the hour"

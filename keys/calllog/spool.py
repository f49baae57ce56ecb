"""A durable place for call-log rows the database refused, until they can be stored.

A logged call's answer has already gone to the caller when its row is written.
If the database refuses the row (down, locked, full), losing it silently would
hide a call that was carried out, so the row is written to a file here instead
(one JSON file per call, written to a temporary name, fsynced and renamed, so a
crash never leaves half a row) and stored later by `replay()`: from the process
that spooled it on its next successful write, from `manage.py
replay_api_call_spool`, and reported by /healthz while any wait.

Replaying is idempotent: a row whose document id is already stored is
dropped from the spool, not stored twice.
"""

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import DatabaseError

log = logging.getLogger("keys.security")

# Set when this process spooled a row; its next successful write replays the spool.
_pending_here = False
_last_attempt = 0.0
REPLAY_INTERVAL = 5.0


def directory() -> Path:
    return Path(settings.KEYS_SPOOL_DIR)


def keep(row: dict[str, Any]) -> Path:
    """Write one call-log row durably; returns the file it is in."""
    global _pending_here
    folder = directory()
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{row['document_id']}.json"
    temporary = folder / f".{row['document_id']}.{os.getpid()}.tmp"
    data = json.dumps(row, default=str, ensure_ascii=True).encode("ascii")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temporary, target)
    _pending_here = True
    return target


def pending() -> int:
    folder = directory()
    if not folder.is_dir():
        return 0
    return sum(1 for entry in os.scandir(folder) if entry.name.endswith(".json"))


def replay() -> tuple[int, int]:
    """Store every spooled row; returns (stored, still waiting)."""
    from .writer import store_one  # writer imports this module

    global _pending_here
    folder = directory()
    if not folder.is_dir():
        return 0, 0
    stored = waiting = 0
    for path in sorted(folder.glob("*.json")):
        try:
            row = json.loads(path.read_text(encoding="ascii"))
        except (OSError, ValueError):
            log.error("call-log spool: cannot read %s; left in place", path.name)
            waiting += 1
            continue
        try:
            store_one(row)  # skips a document already stored (an earlier replay stopped before removing the file)
        except DatabaseError:
            waiting += 1
            continue
        path.unlink(missing_ok=True)
        stored += 1
    _pending_here = waiting > 0
    if stored:
        log.warning("call-log spool: stored %s spooled call(s); %s still waiting", stored, waiting)
    return stored, waiting


def replay_if_due() -> None:
    """After a successful write: replay what this process spooled, at most every few seconds."""
    global _last_attempt
    if not _pending_here or time.monotonic() - _last_attempt < REPLAY_INTERVAL:
        return
    _last_attempt = time.monotonic()
    try:
        replay()
    except Exception:  # bookkeeping must never break the call that triggered it
        log.exception("call-log spool: replay failed")

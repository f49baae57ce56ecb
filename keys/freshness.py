"""The change marker: a number every committed change to keys, grants or API
types advances, read by every worker before it trusts its own cached decisions.

Each worker process keeps the key states it has looked up (keys/access.py), so
a warm call makes no query. The marker is what makes that safe: a process
compares the marker with the one its cache was filled under, and a change made
through any door (pane, admin, command, shell) is obeyed by the very next call
in every process.

Where the marker lives:
- "file" (the embedded default, one host): 8 bytes in a file that every worker
  maps into memory; reading it costs well under a microsecond, advancing it
  takes a file lock.
- "cache" (when a shared cache such as Redis is configured; several hosts):
  one integer in that cache, one round trip to read.

A change advances the marker twice: at once (so this transaction's own later
reads, and tests inside a transaction, see it) and again after the commit (so
no process can have cached the old rows under the new number in between).
"""

import fcntl
import mmap
import os
import struct
import threading
from pathlib import Path

from django.conf import settings
from django.core.cache import cache

CACHE_KEY = "keys:decision:version"
_FORMAT = "<Q"
_SIZE = struct.calcsize(_FORMAT)

_lock = threading.Lock()
_mapped: tuple[str, mmap.mmap] | None = None


def _path() -> Path:
    return Path(settings.KEYS_SHARED_STATE_DIR) / "decision-marker"


def _map() -> mmap.mmap:
    global _mapped
    path = str(_path())
    if _mapped is None or _mapped[0] != path:
        with _lock:
            if _mapped is None or _mapped[0] != path:
                _path().parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
                try:
                    if os.fstat(fd).st_size < _SIZE:
                        fcntl.flock(fd, fcntl.LOCK_EX)
                        if os.fstat(fd).st_size < _SIZE:
                            os.pwrite(fd, struct.pack(_FORMAT, 1), 0)
                        fcntl.flock(fd, fcntl.LOCK_UN)
                    _mapped = (path, mmap.mmap(fd, _SIZE, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE))
                finally:
                    os.close(fd)
    return _mapped[1]


def uses_cache() -> bool:
    return settings.KEYS_CHANGE_MARKER == "cache"


def current() -> int:
    """The marker now."""
    if uses_cache():
        version = cache.get(CACHE_KEY)
        if version is None:
            cache.add(CACHE_KEY, 1, timeout=None)
            version = cache.get(CACHE_KEY, 1)
        return version
    return struct.unpack_from(_FORMAT, _map())[0]


def advance() -> None:
    """Make every process's cached decisions stale."""
    if uses_cache():
        try:
            cache.incr(CACHE_KEY)
        except ValueError:  # not set yet (or evicted): any new value is a fresh start
            cache.add(CACHE_KEY, 1, timeout=None)
        return
    mapped = _map()
    fd = os.open(_path(), os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # two writers must not both write n + 1
        struct.pack_into(_FORMAT, mapped, 0, struct.unpack_from(_FORMAT, mapped)[0] + 1)
    finally:
        os.close(fd)  # closing releases the lock

"""The change marker: a number every committed change to keys, grants or API
types advances (keys/signals.py, the one place that does), read by every worker
before it trusts its own cached decisions.

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
  one integer in that cache, one round trip to read (none while
  keys.cache.TrackedReads holds it).

Workers compare the marker by equality, so what must never happen is a marker
repeating a value some worker has already filled its decisions under. The
cache can lose the key (FLUSHALL, a restart without persistence, eviction
under an allkeys-* maxmemory policy); a missing marker is therefore never
re-created from a fixed number but from `_start()`, nanoseconds since the
epoch: a value the marker could not have reached by +1 steps since it was last
created (that would take one advance per nanosecond; each is a round trip to
Redis). Redis then sends every tracking worker an invalidation, each worker
reads the new number, finds it differs, and drops every decision it held.
Failure mode: a clock stepped back, or a host whose clock is behind the one
that made the previous start, re-creates a smaller number; it still repeats no
value unless it lands, to the nanosecond, within the few changes counted since
that start (a smaller marker drops held decisions like a larger one).

A change advances the marker twice: at once (so this transaction's own later
reads, and tests inside a transaction, see it) and again after the commit (so
no process can have cached the old rows under the new number in between).
"""

import fcntl
import mmap
import os
import struct
import threading
import time

from django.core.cache import cache

from .conf import hot

CACHE_KEY = "keys:decision:version"
_FORMAT = "<Q"
_SIZE = struct.calcsize(_FORMAT)


class MappedFile:
    """A small file under KEYS_SHARED_STATE_DIR that every process maps into memory
    (zeros when new). Reads are memory reads; `locked()` serializes writers across
    processes with the file's lock. Used by the change marker and keys/shared.py."""

    def __init__(self, name: str, size: int) -> None:
        self.name, self.size = name, size
        self._lock = threading.Lock()
        self._mapped: tuple[object, str, mmap.mmap] | None = None
        self._fd: tuple[int, str, int] | None = None

    def _map(self) -> tuple[str, mmap.mmap]:
        folder = hot.SHARED_STATE_DIR
        mapped = self._mapped
        if mapped is not None and mapped[0] is folder:  # the common case: no path work per call
            return mapped[1], mapped[2]
        with self._lock:
            path = os.path.join(folder, self.name)
            os.makedirs(folder, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                if os.fstat(fd).st_size < self.size:
                    os.ftruncate(fd, self.size)
                memory = mmap.mmap(fd, self.size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
            finally:
                os.close(fd)
            self._mapped = (folder, path, memory)
            return path, memory

    @property
    def memory(self) -> mmap.mmap:
        return self._map()[1]

    def _lock_fd(self, path: str) -> int:
        """This process's own descriptor of the file, kept open: opening and closing it for
        every lock was most of a refused call's counting (bench/profile_call.py). Opened
        again in a forked child, whose inherited descriptor would share the parent's lock."""
        held = self._fd
        if held is not None and held[0] == os.getpid() and held[1] == path:
            return held[2]
        with self._lock:
            fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
            self._fd = (os.getpid(), path, fd)
            return fd

    def locked(self) -> "_Locked":
        """`with file.locked() as memory:` the mapped memory, this process's threads and every
        other process kept out. A class, not @contextmanager: a refused call takes this lock,
        and the generator's machinery cost more than the two flock calls."""
        path, memory = self._map()
        return _Locked(self._lock, self._lock_fd(path), memory)


class _Locked:
    __slots__ = ("fd", "memory", "thread_lock")

    def __init__(self, thread_lock: threading.Lock, fd: int, memory: mmap.mmap) -> None:
        self.thread_lock, self.fd, self.memory = thread_lock, fd, memory

    def __enter__(self) -> mmap.mmap:
        self.thread_lock.acquire()  # flock does not exclude this process's other threads, which share the descriptor
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX)
        except BaseException:
            self.thread_lock.release()
            raise
        return self.memory

    def __exit__(self, *exc) -> None:
        try:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
        finally:
            self.thread_lock.release()


class FileMarker:
    """A counter in a mapped file: reading it is a memory read."""

    def __init__(self, name: str) -> None:
        self.file = MappedFile(name, _SIZE)

    def current(self) -> int:
        return struct.unpack_from(_FORMAT, self.file.memory)[0]

    def advance(self) -> None:
        with self.file.locked() as memory:  # two writers must not both write n + 1
            struct.pack_into(_FORMAT, memory, 0, struct.unpack_from(_FORMAT, memory)[0] + 1)


decisions = FileMarker("decision-marker")


def uses_cache() -> bool:
    return hot.CHANGE_MARKER == "cache"


def _start() -> int:
    """The value a lost marker starts again from: one it has never had (see above)."""
    return time.time_ns()


def current() -> int:
    """The marker now."""
    if uses_cache():
        # keys.cache.RedisCache holds the marker while Redis's pushes say it has not changed.
        version = getattr(cache, "get_many_tracked", cache.get_many)([CACHE_KEY]).get(CACHE_KEY)
        if version is None:  # never set, or lost with the cache's data
            start = _start()
            cache.add(CACHE_KEY, start, timeout=None)  # no TTL: only a flush or an eviction loses it
            # Another process may have started it first; if it is lost again at once, `start` is still new.
            version = cache.get(CACHE_KEY, start)
        return version
    return decisions.current()


def advance() -> None:
    """Make every process's cached decisions stale."""
    if uses_cache():
        if incr_or_start := getattr(cache, "incr_or_start", None):  # keys.cache.RedisCache: atomic
            incr_or_start(CACHE_KEY, _start())
            return
        try:  # another cache: get then set, as Django's own incr does there
            cache.incr(CACHE_KEY)
        except ValueError:  # never set, or lost
            cache.add(CACHE_KEY, _start(), timeout=None)
        return
    decisions.advance()

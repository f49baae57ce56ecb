"""The shared counters of the embedded default (keys/shared.py) stay exact when
several worker processes, each with several threads, count at once: the
throttle must not let more guesses through because a server has more workers.
Each process keeps its own descriptor for the file lock; a forked child must
not use its parent's (it would share the parent's lock and exclude nothing)."""

import multiprocessing
import os
import threading

from keys import freshness, shared

PROCESSES, THREADS, EACH = 3, 3, 200


def _count(name: str) -> None:
    def work():
        for _ in range(EACH):
            shared.incr([(name, None), (f"{name}:window", 60)])

    threads = [threading.Thread(target=work) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def test_counts_from_processes_and_threads_are_all_kept(settings):
    shared.incr([("warm", None)])  # the parent maps the file and opens its lock first, then forks
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_count, args=("calls",)) for _ in range(PROCESSES)]
    for worker in workers:
        worker.start()
    _count("calls")  # the parent counts beside them
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    expected = (PROCESSES + 1) * THREADS * EACH
    assert shared.get(["calls", "calls:window"]) == {"calls": expected, "calls:window": expected}


def test_a_forked_child_opens_its_own_lock_descriptor(settings):
    shared.incr([("warm", None)])
    parent_fd = shared._table._fd
    assert parent_fd is not None
    assert parent_fd[0] == os.getpid()
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        try:
            shared.incr([("child", None)])
            own = shared._table._fd
            os.write(writer, b"ok" if own[0] == os.getpid() and own[2] != parent_fd[2] else b"shared")
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    assert os.read(reader, 10) == b"ok"
    assert shared.get(["child"]) == {"child": 1}


def test_the_change_marker_advances_once_per_change_across_processes(settings):
    start = freshness.decisions.current()
    context = multiprocessing.get_context("fork")

    def advance():
        for _ in range(EACH):
            freshness.decisions.advance()

    workers = [context.Process(target=advance) for _ in range(PROCESSES)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    assert freshness.decisions.current() == start + PROCESSES * EACH

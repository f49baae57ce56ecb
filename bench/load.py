"""Load without loss: /chqapi/ against gunicorn and PostgreSQL, logging on.

Runs for BENCH_SECONDS (60) with BENCH_CLIENTS (8) concurrent keep-alive
clients calling POST /chqapi/import/inventory (a trivial handler, so the key
check and the call logging are what is measured), then prints requests sent,
non-2xx answers, and stored log rows against 2xx answers (must be equal:
nothing lost). Modes:

  python bench/load.py             steady run
  python bench/load.py --restart   restarts PostgreSQL in the middle of the run and
                                   prints errors while it was down and after it was back

Without DATABASE_URL it starts a scratch PostgreSQL cluster on 127.0.0.1 itself
(the distribution's postgresql package; as the postgres user when run as root)
and removes it afterwards. --restart needs that scratch cluster.
"""

import argparse
import contextlib
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import GUNICORN_CONFIG, PYTHON, ROOT, free_port, manage
from chq.dotenv import fresh_secrets

SECONDS = float(os.environ.get("BENCH_SECONDS", "60"))
CLIENTS = int(os.environ.get("BENCH_CLIENTS", "8"))
WORKERS = os.environ.get("BENCH_WORKERS", "3")


class ScratchPostgres:
    """A throwaway cluster, started and stopped by this script."""

    def __init__(self) -> None:
        bins = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
        if not bins:
            sys.exit("PostgreSQL is not installed: apt-get install postgresql, or set DATABASE_URL.")
        self.bin = bins[-1].parent
        self.dir = Path(tempfile.mkdtemp(prefix="chq-load-pg-"))
        self.port = free_port()
        self.as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.as_postgres:
            shutil.chown(self.dir, "postgres")

    def pg_ctl(self, *args: str) -> None:
        subprocess.run(
            [*self.as_postgres, str(self.bin / "pg_ctl"), "-D", str(self.dir / "data"), *args],
            check=True,
            stdout=subprocess.DEVNULL,
        )

    def start(self) -> str:
        subprocess.run(
            [
                *self.as_postgres,
                str(self.bin / "initdb"),
                "-D",
                str(self.dir / "data"),
                "-U",
                "postgres",
                "--auth=trust",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        self.pg_ctl("-l", str(self.dir / "log"), "-w", "-o", f"-h 127.0.0.1 -p {self.port} -k {self.dir}", "start")
        for sql in ("CREATE ROLE chq LOGIN PASSWORD 'chq'", "CREATE DATABASE chq OWNER chq"):
            subprocess.run(
                ["psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-q", "-c", sql], check=True
            )
        return f"postgres://chq:chq@127.0.0.1:{self.port}/chq"

    def stop_for(self, seconds: float) -> tuple[float, float]:
        down = time.time()
        self.pg_ctl("-m", "fast", "-w", "stop")
        time.sleep(seconds)
        self.pg_ctl("-l", str(self.dir / "log"), "-w", "-o", f"-h 127.0.0.1 -p {self.port} -k {self.dir}", "start")
        return down, time.time()

    def remove(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.pg_ctl("-m", "immediate", "stop")
        shutil.rmtree(self.dir, ignore_errors=True)


def load(port: int, key: str, stop_at: float) -> list[tuple[float, int]]:
    """Every request's (time, status); status 0 for a connection that failed."""
    results: list[tuple[float, int]] = []
    lock = threading.Lock()
    body = json.dumps({"Source": "load", "Data": {"Items": [{"Sku": "A-1", "Qty": 3}]}}).encode()
    headers = {"ApiKey": key, "Content-Type": "application/json"}

    def client() -> None:
        mine = []
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while time.time() < stop_at:
            try:
                conn.request("POST", "/chqapi/import/inventory", body=body, headers=headers)
                response = conn.getresponse()
                response.read()
                mine.append((time.time(), response.status))
            except (OSError, http.client.HTTPException):
                mine.append((time.time(), 0))
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.close()
        with lock:
            results.extend(mine)

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--restart", action="store_true", help="restart PostgreSQL in the middle of the run")
    parser.add_argument("--down", type=float, default=5.0, help="seconds PostgreSQL stays down (--restart)")
    args = parser.parse_args()

    scratch = None
    database_url = os.environ.get("DATABASE_URL")
    if not database_url or args.restart:
        scratch = ScratchPostgres()
        database_url = scratch.start()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "chq.settings",
        "DEBUG": "false",
        **fresh_secrets(),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SECURE_SSL_REDIRECT": "false",
        "DATABASE_URL": database_url,
        "CONN_MAX_AGE": "60",
        "LOG_LEVEL": "CRITICAL",
        "KEYS_HANDLER_MODULES": "bench.echo_handler",
        "KEYS_THROTTLE_REFUSALS": "0",
    }
    server = None
    try:
        manage(env, "migrate", "--no-input", "-v", "0")
        key = (
            manage(
                env,
                "create_api_key",
                "--description",
                "load",
                "--type",
                "import:inventory:logged",
                "--quiet",
                "--actor",
                "bench",
            )
            .strip()
            .splitlines()[-1]
        )
        port = free_port()
        server = subprocess.Popen(
            [
                PYTHON,
                "-m",
                "gunicorn",
                "-c",
                GUNICORN_CONFIG,
                f"-b=127.0.0.1:{port}",
                f"-w={WORKERS}",
                "--log-level=critical",
            ],
            cwd=ROOT,
            env=env,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(2)
        start = time.time()
        window = None
        if args.restart:

            def outage() -> None:
                nonlocal window
                time.sleep(SECONDS / 3)
                window = scratch.stop_for(args.down)

            threading.Thread(target=outage).start()
        results = load(port, key, start + SECONDS)
        elapsed = time.time() - start
        stored = int(
            manage(
                env, "shell", "-c", "from keys.models import ApiDocument; print(ApiDocument.objects.count())"
            ).split()[-1]
        )
    finally:
        if server:
            server.terminate()
            server.wait(timeout=10)
        if scratch:
            scratch.remove()

    ok = sum(1 for _, status in results if 200 <= status < 300)
    failed = [(t, s) for t, s in results if not 200 <= s < 300]
    print(
        f"{'restart' if args.restart else 'steady'} run: {elapsed:.0f} s, gunicorn {WORKERS} workers, "
        f"{CLIENTS} clients, PostgreSQL, logging on"
    )
    print(f"requests sent:        {len(results)} ({len(results) / elapsed:.0f}/s)")
    print(f"2xx answers:          {ok}")
    print(f"non-2xx answers:      {len(failed)}")
    print(f"stored log rows:      {stored} ({'equal to 2xx: nothing lost' if stored == ok else 'MISMATCH'})")
    if window:
        down, up = window
        grace = 2.0  # connections notice the restart on their next request
        during = sum(1 for t, _ in failed if down - 0.5 <= t <= up + grace)
        after = sum(1 for t, _ in failed if t > up + grace)
        print(f"database down:        {up - down:.1f} s (from {down - start:.1f} s into the run)")
        print(f"errors while down:    {during} (and within {grace:.0f} s of coming back)")
        print(f"errors after:         {after}")
    sys.exit(0 if stored == ok and (args.restart or not failed) else 1)


if __name__ == "__main__":
    main()

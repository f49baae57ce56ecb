"""CPU per request of every process on the machine while wrk loads one row of
bench/verify.py: where a logged call's cost goes, beside an allowed one's.

Reads each process's user + system time from /proc before and after a wrk run
(BENCH_SECONDS, default 4) and prints µs per answered request, per process
name (gunicorn workers, postgres, redis-server, ...): a logged call's document
is written in the request (keys/calllog/writer.py), so the workers' own CPU is
the whole of it on SQLite. The bare Django view (bench/baselines/bare.py) comes first, the
limit the allowed and refused rows are held against. BENCH_SERVER=asgi runs both under
uvicorn (bench/baselines/bare_asgi.py, chq/asgi.py) instead of gunicorn. DATABASE_URL /
CACHE_URL: PostgreSQL and Redis, as in bench/verify.py. Linux only (/proc); needs wrk.
"""

import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.verify import Row, manage, start, start_asgi, wrk
from chq.dotenv import fresh_secrets

TICKS = os.sysconf("SC_CLK_TCK")
UNKNOWN_KEY = "00000000-0000-4000-8000-000000000000"


PARENTS: dict[str, str] = {}  # pid → its parent's pid, as cpu_ticks last saw it


def cpu_ticks() -> dict[tuple[str, str], int]:
    """(pid, name) → user + system clock ticks, for every process."""
    found = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue  # ended meanwhile
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        found[(pid, name)] = int(fields[11]) + int(fields[12])
        PARENTS[pid] = fields[1]
    return found


def server_ticks(spent: dict[str, int], server: int) -> int:
    """What the server's own processes (its master and workers) spent: on a machine shared with
    other work, the figure that belongs to the row alone."""
    root = str(server)
    return sum(ticks for pid, ticks in spent.items() if root in (pid, PARENTS.get(pid)))


def main() -> None:
    scratch = Path(tempfile.mkdtemp(prefix="chq-cpu-"))
    env = (
        {k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", "DATABASE_URL", "CACHE_URL")}
        | fresh_secrets()
        | {
            "LOG_LEVEL": "WARNING",
            "DJANGO_SETTINGS_MODULE": "chq.settings",
            "DEBUG": "false",
            "ALLOWED_HOSTS": "127.0.0.1",
            "SECURE_SSL_REDIRECT": "false",
            "DATABASE_URL": os.environ.get("DATABASE_URL", f"sqlite:///{scratch / 'product.sqlite3'}"),
            "KEYS_SHARED_STATE_DIR": str(scratch / "var"),
            "STATIC_ROOT": str(scratch / "static"),
            "KEYS_HANDLER_MODULES": "bench.echo_handler",
            # Counted, never blocked: the refused row must measure 401s, not 429s.
            "KEYS_THROTTLE_REFUSALS": "1000000000",
        }
    )
    if os.environ.get("CACHE_URL"):
        env["CACHE_URL"] = os.environ["CACHE_URL"]
    manage(env, "migrate", "--no-input", "-v", "0")
    manage(env, "collectstatic", "--no-input", "-v", "0")
    code = """
from keys.models import ApiType
from keys.services import GrantSpec, api_key_create
export = ApiType.objects.get(direction="export", api_id="inventory")
imports = ApiType.objects.get(direction="import", api_id="inventory")
plain = api_key_create(description="cpu plain", is_active=True, grants=[GrantSpec(export.pk)])
logged = api_key_create(description="cpu logged", is_active=True, grants=[GrantSpec(imports.pk, logged=True)])
unlogged = api_key_create(description="cpu unlogged", is_active=True, grants=[GrantSpec(imports.pk)])
print(plain.value, logged.value, unlogged.value)
"""
    plain, logged, unlogged = manage(env, "shell", "-c", code).split()[-3:]
    bare_env = {k: v for k, v in env.items() if k != "DJANGO_SETTINGS_MODULE"}
    if os.environ.get("BENCH_SERVER") == "asgi":
        servers = {
            "bare": start_asgi("bare", "bench.baselines.bare_asgi:application", bare_env, scratch),
            "product": start_asgi("product", "chq.asgi:application", env, scratch),
        }
    else:
        servers = {
            "bare": start("bare", "bench.baselines.bare:application", bare_env, scratch),
            "product": start("product", "chq.wsgi", env, scratch),
        }
    try:
        for row in (
            # The limit, as in bench/verify.py: what a bare Django view costs in the same server.
            Row("bare view", "bare", "/", 200),
            Row("allowed", "product", "/chqapi/export/inventory", 501, {"ApiKey": plain}),
            Row("refused", "product", "/chqapi/export/inventory", 401, {"ApiKey": UNKNOWN_KEY}),
            Row("logged", "product", "/chqapi/import/inventory", 200, {"ApiKey": logged}),
            Row("same call unlogged", "product", "/chqapi/import/inventory", 200, {"ApiKey": unlogged}),
        ):
            url = servers[row.server][1]
            wrk(url, row)  # warm
            before = cpu_ticks()
            result = wrk(url, row)
            after = cpu_ticks()
            if set(result["statuses"]) != {str(row.expect)}:
                sys.exit(f"{row.name}: answers {result['statuses']}, not all {row.expect}")
            per_name: dict[str, int] = {}
            per_pid: dict[str, int] = {}
            for (pid, name), ticks in after.items():
                spent = ticks - before.get((pid, name), ticks)
                if spent > 0:
                    per_name[name] = per_name.get(name, 0) + spent
                    per_pid[pid] = spent
            requests = result["requests"]
            shares = sorted(per_name.items(), key=lambda item: -item[1])[:6]
            total = sum(per_name.values()) / TICKS * 1e6 / requests
            own = server_ticks(per_pid, servers[row.server][0].pid) / TICKS * 1e6 / requests
            print(
                f"{row.name}: {result['rps']:.0f} req/s; CPU µs per request {own:.0f} in the server, "
                f"{total:.0f} in all: "
                + ", ".join(f"{name} {ticks / TICKS * 1e6 / requests:.0f}" for name, ticks in shares)
            )
    finally:
        for process, _ in servers.values():
            process.terminate()
            process.wait(timeout=15)


if __name__ == "__main__":
    main()

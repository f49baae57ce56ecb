"""cProfile of guarded calls through the production WSGI application, in process
(no sockets): where the time of one call goes. `python bench/profile_call.py
[allowed|limited|logged|unlogged|unknown|malformed] [N]` prints the top functions by own time."""

import cProfile
import json
import os
import pstats
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
scratch = Path(tempfile.mkdtemp(prefix="chq-profile-"))
os.environ.setdefault("KEYS_SHARED_STATE_DIR", str(scratch / "var"))
os.environ.setdefault("KEYS_HANDLER_MODULES", "bench.echo_handler")
os.environ.setdefault("KEYS_THROTTLE_REFUSALS", "1000000000")
from bench.common import django_in_process, microseconds_a_call, wsgi_post  # noqa: E402  (after the environment it reads)

django_in_process("chq-profile-")

from chq.wsgi import application  # noqa: E402
from keys.models import ApiType  # noqa: E402
from keys.services import GrantSpec, api_key_create  # noqa: E402

mode = sys.argv[1] if len(sys.argv) > 1 else "allowed"
count = int(sys.argv[2]) if len(sys.argv) > 2 else 5000
inv_export = ApiType.objects.get(direction="export", api_id="inventory")
inv_import = ApiType.objects.get(direction="import", api_id="inventory")
plain = api_key_create(description="p", is_active=True, grants=[GrantSpec(inv_export.pk)])
logged = api_key_create(description="l", is_active=True, grants=[GrantSpec(inv_import.pk, logged=True)])
unlogged = api_key_create(description="u", is_active=True, grants=[GrantSpec(inv_import.pk)])
# A rate it never reaches: what counting a call against a limit costs.
limited = api_key_create(
    description="r", is_active=True, grants=[GrantSpec(inv_export.pk)], rate_per_second=1_000_000_000
)
key, path = {
    "allowed": (str(plain.value), "/chqapi/export/inventory"),
    "logged": (str(logged.value), "/chqapi/import/inventory"),
    # The same path and handler, not logged: what logging itself costs is the difference.
    "unlogged": (str(unlogged.value), "/chqapi/import/inventory"),
    "limited": (str(limited.value), "/chqapi/export/inventory"),
    "unknown": ("00000000-0000-4000-8000-000000000000", "/chqapi/export/inventory"),
    "malformed": ("not-a-guid", "/chqapi/export/inventory"),
}[mode]
body = json.dumps({"Source": "bench", "Data": {"Items": [{"Sku": "A-1", "Qty": 3}]}}).encode()


def call() -> str:
    return wsgi_post(application, path, key, body)


print(f"{mode}: {microseconds_a_call(call, count):.0f} µs a call ({call()}) without the profiler")
profile = cProfile.Profile()
profile.enable()
for _ in range(count):
    call()
profile.disable()
stats = pstats.Stats(profile)
stats.sort_stats("tottime").print_stats(18)
stats.sort_stats("cumtime").print_stats("keys/|chq/|logging|sqlite|shared", 25)
if os.environ.get("PROFILE_OWN"):
    stats.sort_stats("tottime").print_stats("/keys/", 30)

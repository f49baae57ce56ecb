"""The bare Django view (bench/baselines/bare.py) called in process the way
bench/profile_call.py calls the guarded API: what one call costs Django itself.
`python bench/bare_call.py [N]` prints µs a call. A process of its own, because
the bare project configures Django's settings differently from the product."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.baselines.bare import application
from bench.common import microseconds_a_call, wsgi_post

BODY = json.dumps({"Source": "bench", "Data": {"Items": [{"Sku": "A-1", "Qty": 3}]}}).encode()


def call() -> str:
    return wsgi_post(application, "/", "00000000-0000-4000-8000-000000000000", BODY)


if __name__ == "__main__":
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    print(f"bare: {microseconds_a_call(call, count):.0f} µs a call ({call()})")

"""A separate process for the cross-process freshness test: reads lines
`KEY-VALUE DIRECTION API-ID` on stdin and prints the access decision's reason
for each, using the settings from its environment (Redis cache, scratch DB)."""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chq.settings")

import django

django.setup()

from django.db import connection  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

from keys.access import decide  # noqa: E402

for line in sys.stdin:
    value, direction, api_id = line.split()
    with CaptureQueriesContext(connection) as queries:
        decision = decide(value, direction=direction, api_id=api_id)
    print(f"{decision.reason.value}|{len(queries)}", flush=True)

"""An export for the async worker tests (KEYS_HANDLER_MODULES=tests.gated_handler):
Inventory Export starts, says so in a file, and finishes only when the test
opens its gate (a file), so a test can see a document InProcess and kill the
worker in the middle of its work."""

import os
import time
from pathlib import Path

from keys.guard import ApiCall, register


@register("export", "inventory")
def gated_inventory_export(call: ApiCall) -> dict:
    folder = Path(os.environ["GATED_HANDLER_DIR"])
    (folder / f"started-{call.document_id}").touch()
    deadline = time.monotonic() + 60
    while not (folder / "gate").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return {"Items": [], "Source": call.body.get("Source", "")}

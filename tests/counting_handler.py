"""An import whose every run leaves a mark (KEYS_HANDLER_MODULES=tests.counting_handler):
Location Import appends its document id to a file, one line per run, from any
worker process (O_APPEND writes of one short line are never interleaved), so a
test can count how often a handler ran, not only what was answered. Only the
servers import it: imported in the test process, it would serve Location Import
there too."""

import os
from pathlib import Path

from keys.guard import ApiCall, register


@register("import", "location")
def counted_location_import(call: ApiCall) -> dict:
    marks = Path(os.environ["COUNTING_HANDLER_DIR"]) / "runs"
    fd = os.open(marks, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.write(fd, f"{call.document_id}\n".encode())
    finally:
        os.close(fd)
    return {"TotalRecords": 1, "AcceptedRecords": 1, "ErrorRecords": 0}

import logging

from .paths import is_api_path

# Answers the API gives on purpose; keys.security already records the refusals
# (without the key), so django.request need not repeat each one as a warning/error.
API_ANSWERS = {400, 401, 403, 404, 405, 413, 429, 501}


class SkipDeliberateApiAnswers(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        request = getattr(record, "request", None)
        path = getattr(request, "path", "")
        return not (is_api_path(path) and getattr(record, "status_code", None) in API_ANSWERS)

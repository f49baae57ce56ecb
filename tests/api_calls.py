"""How tests call the API: through Django's test client (`post`), or over HTTP to a real
server (`post_http`, on `http_call`). One place, so that every test sends the same thing a
program does: a JSON body and the ApiKey header."""

import json
import urllib.error
import urllib.request

from django.test import Client


def post(path, key=None, body=None, raw=None, *, client=None, **headers):
    """POST `body` as JSON (or the `raw` text as it is) to `path`, with the ApiKey header unless
    `key` is None; through `client` (a new Client() when none). Extra keyword arguments are
    WSGI environ entries (HTTP_X_FORWARDED_FOR=..., REMOTE_ADDR=...). Returns the response."""
    if key is not None:
        headers["HTTP_APIKEY"] = str(key)
    data = raw if raw is not None else json.dumps(body if body is not None else {})
    return (client or Client()).post(path, data, content_type="application/json", **headers)


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def http_call(
    url: str,
    *,
    data: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 30,
    follow_redirects: bool = True,
) -> tuple[int, dict, bytes]:
    """GET `url` (POST when there is `data`) over a real socket; (status, headers, body) as they
    came, error statuses included (and redirects, unless `follow_redirects`)."""
    request = urllib.request.Request(url, data=data, headers=headers or {})
    opener = urllib.request.build_opener() if follow_redirects else urllib.request.build_opener(_NoRedirects)
    try:
        with opener.open(request, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def post_http(
    base_url: str,
    path: str,
    key: str | None = None,
    body=None,
    raw: bytes | None = None,
    headers: dict[str, str] | None = None,
    *,
    timeout: float = 30,
) -> tuple[int, dict, bytes]:
    """`post` for a real server at `base_url`: (status, headers, body)."""
    sent = dict(headers or {})
    if key is not None:
        sent["ApiKey"] = str(key)
    data = raw if raw is not None else json.dumps(body if body is not None else {}).encode()
    return http_call(base_url + path, data=data, headers=sent, timeout=timeout)

"""The client's address, also behind reverse proxies.

Throttling and the audit trail are per client address. Behind a proxy,
REMOTE_ADDR is the proxy's, so every caller would share one address (and one
throttle). With KEYS_TRUSTED_PROXIES = N, the address is the one the N-th proxy
from this server saw: X-Forwarded-For's N-th entry from the right. Entries
further left are what the client itself claimed and are never trusted.
"""

import ipaddress

from django.http import HttpRequest

from .conf import hot


def client_address(request: HttpRequest) -> str | None:
    remote = request.META.get("REMOTE_ADDR") or None
    proxies = hot.TRUSTED_PROXIES
    if not proxies:
        return remote
    forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
    if len(forwarded) < proxies:
        return remote
    candidate = forwarded[-proxies]
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return remote

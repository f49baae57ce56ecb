"""Client addresses behind proxies: only what trusted proxies appended counts."""

import pytest
from django.test import RequestFactory, override_settings

from keys.clients import client_address
from tests.api_calls import post


def request_with(remote, forwarded=None):
    extra = {"REMOTE_ADDR": remote}
    if forwarded is not None:
        extra["HTTP_X_FORWARDED_FOR"] = forwarded
    return RequestFactory().get("/", **extra)


@pytest.mark.parametrize(
    ("proxies", "forwarded", "expected"),
    [
        (0, "203.0.113.7", "10.0.0.1"),  # no trusted proxy: the header is the client's own claim
        (1, "203.0.113.7", "203.0.113.7"),
        (1, "198.51.100.99, 203.0.113.7", "203.0.113.7"),  # the left entry is a spoof attempt
        (2, "198.51.100.99, 203.0.113.7, 10.0.0.2", "203.0.113.7"),
        (2, "203.0.113.7", "10.0.0.1"),  # fewer entries than proxies: not trustworthy
        (1, "not-an-ip", "10.0.0.1"),
        (1, "", "10.0.0.1"),
        (1, "2001:db8::1", "2001:db8::1"),
    ],
)
def test_trusted_proxies(proxies, forwarded, expected):
    with override_settings(KEYS_TRUSTED_PROXIES=proxies):
        assert client_address(request_with("10.0.0.1", forwarded)) == expected


@pytest.mark.django_db
@override_settings(KEYS_TRUSTED_PROXIES=1, KEYS_THROTTLE_REFUSALS=3)
def test_throttle_is_per_client_behind_a_proxy(make_key):
    from django.test import Client

    good = make_key(allowed_for_all=True)
    proxy = Client(REMOTE_ADDR="10.0.0.1")

    def call(client_ip, key):
        return post("/chqapi/export/inventory", key, client=proxy, HTTP_X_FORWARDED_FOR=client_ip).status_code

    assert [call("203.0.113.66", "bad") for _ in range(4)] == [401, 401, 401, 429]
    # Another client behind the same proxy is not blocked.
    assert call("198.51.100.5", str(good.value)) == 501

"""keys.chqapi.headers.SecurityMiddleware, the API chain's SecurityMiddleware: under every
setting Django's SecurityMiddleware reads, it gives each answer exactly the headers Django's
own gives it, and redirects exactly as it does; when ResponseHeaders has no `_store` (a
Django that changed its private detail) it still does, through the public mapping."""

import itertools

import pytest
from django.http import HttpResponse, JsonResponse, StreamingHttpResponse
from django.middleware.security import SecurityMiddleware as Django
from django.test import RequestFactory, override_settings

from keys.chqapi.headers import SecurityMiddleware as Ours

SETTINGS = [
    {"SECURE_HSTS_SECONDS": seconds, "SECURE_HSTS_INCLUDE_SUBDOMAINS": sub, "SECURE_HSTS_PRELOAD": preload}
    for seconds, sub, preload in [(0, False, False), (3600, False, False), (31536000, True, True)]
]
POLICIES = [
    {
        "SECURE_CONTENT_TYPE_NOSNIFF": nosniff,
        "SECURE_REFERRER_POLICY": referrer,
        "SECURE_CROSS_ORIGIN_OPENER_POLICY": coop,
    }
    for nosniff, referrer, coop in [
        (True, "same-origin", "same-origin"),
        (False, None, None),
        (True, "no-referrer, strict-origin-when-cross-origin", "same-origin-allow-popups"),
        (True, ["origin", "same-origin"], None),
    ]
]


def _answers():
    """Answers as views make them: plain, JSON, streamed, and ones that set a header themselves."""
    yield HttpResponse(b"{}", content_type="application/json", status=501)
    yield JsonResponse({"ok": True})
    yield StreamingHttpResponse(iter([b"a"]))
    yield HttpResponse(headers={"Referrer-Policy": "no-referrer", "Strict-Transport-Security": "max-age=1"})
    yield HttpResponse(headers={"X-Content-Type-Options": "other", "Cross-Origin-Opener-Policy": "unsafe-none"})


def _headers(response) -> list[tuple[str, str]]:
    return sorted(response.items())


@pytest.mark.parametrize(("sts", "policies"), list(itertools.product(SETTINGS, POLICIES)))
@pytest.mark.parametrize("secure", [False, True])
def test_every_answer_gets_djangos_headers(sts, policies, secure):
    factory = RequestFactory()
    with override_settings(**sts, **policies, SECURE_SSL_REDIRECT=False):
        django, ours = Django(lambda r: None), Ours(lambda r: None)
        for theirs, mine in zip(_answers(), _answers(), strict=True):
            request = factory.post("/chqapi/export/inventory", secure=secure)
            expected = _headers(django.process_response(request, theirs))
            assert _headers(ours.process_response(request, mine)) == expected
            assert any(name == "Content-Type" for name, _ in expected)  # the answer's own kept


@pytest.mark.parametrize("secure", [False, True])
def test_without_the_private_store_the_public_mapping_gives_the_same(monkeypatch, secure):
    factory = RequestFactory()
    with override_settings(**SETTINGS[2], **POLICIES[2]):
        django, ours = Django(lambda r: None), Ours(lambda r: None)
        for theirs, mine in zip(_answers(), _answers(), strict=True):
            request = factory.post("/", secure=secure)
            expected = _headers(django.process_response(request, theirs))
            # A ResponseHeaders whose store is no longer a plain dict: the fallback runs.
            monkeypatch.setattr(mine.headers, "_store", _OtherStore(mine.headers._store), raising=False)
            got = ours.process_response(request, mine)
            assert _headers(got) == expected


class _OtherStore(dict):
    """A store of another type (what a future Django might hold): not written directly."""


@override_settings(SECURE_SSL_REDIRECT=True, SECURE_SSL_HOST=None, SECURE_REDIRECT_EXEMPT=[r"^healthz$"])
def test_the_https_redirect_is_djangos():
    factory = RequestFactory()
    ours, django = Ours(lambda r: None), Django(lambda r: None)
    for path, secure in [("/chqapi/export/inventory", False), ("/healthz", False), ("/chqapi/x", True)]:
        request = factory.post(path, secure=secure)
        theirs, mine = django.process_request(request), ours.process_request(request)
        assert (mine is None) == (theirs is None)
        if mine is not None:
            assert (mine.status_code, mine["Location"]) == (301, theirs["Location"])


def test_the_api_chain_uses_it_by_default(client, settings):
    """The demo project's API answers carry the headers, made by this middleware."""
    assert "keys.chqapi.headers.SecurityMiddleware" in settings.KEYS_API_MIDDLEWARE
    response = client.post("/chqapi/export/inventory", data=b"{}", content_type="application/json")
    assert response.status_code == 401
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == settings.SECURE_REFERRER_POLICY
    assert response["Cross-Origin-Opener-Policy"] == settings.SECURE_CROSS_ORIGIN_OPENER_POLICY


def test_the_made_headers_are_validated_at_start():
    """A value Django's ResponseHeaders refuses (a newline) is refused when the chain is made."""
    from django.http.response import BadHeaderError

    with override_settings(SECURE_REFERRER_POLICY="same-origin\nX-Evil: 1"), pytest.raises(BadHeaderError):
        Ours(lambda r: None)

"""Browser tests: a real headless Chromium driven by Playwright against
pytest-django's live server."""

import os
import shutil
from pathlib import Path

import pytest

from tests.conftest import PASSWORD

# Playwright's sync API runs an event loop in the test thread; the ORM calls the
# tests make there (fixtures, assertions) are still plain synchronous code.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


def chromium_path() -> str | None:
    """CHROMIUM_PATH, then the distribution's chromium, else Playwright's own build."""
    for candidate in (os.environ.get("CHROMIUM_PATH"), "/usr/bin/chromium", shutil.which("chromium")):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    args = {
        **browser_type_launch_args,
        # Root in a container needs --no-sandbox; the rest keep Chromium off the (closed) network.
        "args": [
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
        ],
    }
    if path := chromium_path():
        args["executable_path"] = path
    return args


@pytest.fixture
def browser_context_args(browser_context_args, live_server):
    return {
        **browser_context_args,
        "base_url": live_server.url,
        "viewport": {"width": 1280, "height": 800},
        "permissions": ["clipboard-read", "clipboard-write"],
    }


@pytest.fixture(autouse=True)
def _migrated_data(migrated_data):
    """Every browser test runs against a live server, so needs the catalog and groups back."""


@pytest.fixture(autouse=True)
def no_console_errors(page):
    """A page that breaks its Content Security Policy or throws fails the test that showed it."""
    errors = []
    page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
    page.on(
        "console",
        lambda msg: errors.append(msg.text) if msg.type == "error" and "status of 4" not in msg.text else None,
    )
    yield
    assert errors == []


@pytest.fixture
def login(page):
    """Sign in through the login page, as a person would, and land on the keys pane."""

    def sign_in(user):
        page.goto("/settings/integrations/keys/")
        page.get_by_label("username").fill(user.username)
        page.get_by_label("password").fill(PASSWORD)
        page.get_by_role("button", name="sign in").click()
        page.wait_for_url("**/settings/integrations/keys/")
        return page

    return sign_in

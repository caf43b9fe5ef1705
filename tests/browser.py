"""A real headless Chromium for the console tests: Debian's ``chromium`` driven by Playwright (never a downloaded
browser), one page per test that records every console error, uncaught exception and CSP violation, and full-page
screenshots kept under ``tests/artifacts/screenshots/``."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported by the session fixture, which says how to install what is missing
    from playwright.sync_api import Browser, ConsoleMessage, Page, Response

SCREENSHOTS = Path(__file__).resolve().parent / "artifacts" / "screenshots"
# A closed network refuses Google's hosts: everything that would call out at start-up stays off.
CHROMIUM_ARGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync")
TIMEOUT_MS = 30_000
SKIP_ENV = "OSHAL_SKIP_BROWSER"
INSTALL_HINT = (f"install it with `make browser` (apt-get install chromium), point OSHAL_CHROMIUM at a Chromium "
                f"binary, or set {SKIP_ENV}=1 to skip the browser tests")

# Reported to the console by the page itself, so a CSP refusal is caught even where Chromium logs nothing.
_REPORT_CSP = """document.addEventListener("securitypolicyviolation", (e) => {
  console.error(`CSP violation: ${e.violatedDirective} blocked ${e.blockedURI || "inline"}`);
});"""


def chromium_path() -> str | None:
    """The Chromium to drive: $OSHAL_CHROMIUM, else the distribution's ``chromium`` on PATH."""
    configured = os.environ.get("OSHAL_CHROMIUM")
    if configured:
        return configured if os.access(configured, os.X_OK) else None
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")[:120] or "page"


@dataclass
class ConsolePage:
    """One browser page on the platform's console, with what went wrong in it recorded as it happens."""

    page: Page
    base_url: str
    test_name: str
    errors: list[str] = field(default_factory=list)
    shots: list[Path] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.page.set_default_timeout(TIMEOUT_MS)
        self.page.set_default_navigation_timeout(TIMEOUT_MS)
        self.page.add_init_script(_REPORT_CSP)
        self.page.on("console", self._on_console)
        self.page.on("pageerror", lambda error: self.errors.append(f"uncaught: {error}"))

    def _on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(f"console error at {message.location.get('url', '?')}: {message.text}")

    def goto(self, path: str) -> Response:
        response = self.page.goto(self.base_url + path, wait_until="load")
        assert response is not None, f"no response for {path}"
        return response

    def login(self, key: str) -> None:
        """Log in the way a person does: the login page's form, the key typed, the button pressed."""
        self.goto("/login")
        self.page.get_by_label("API key").fill(key)
        with self.page.expect_navigation(wait_until="load"):
            self.page.get_by_role("button", name="Log in").click()
        assert self.page.url == self.base_url + "/", f"logging in landed on {self.page.url}"

    def screenshot(self, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{_slug(self.test_name)}--{_slug(name)}.png"
        self.page.screenshot(path=str(path), full_page=True)
        self.shots.append(path)
        return path

    def text_of(self, selector: str) -> str:
        return self.page.locator(selector).inner_text().strip()

    def assert_no_errors(self, *allowed: str) -> None:
        """No console error, uncaught exception or CSP violation so far, except those containing an ``allowed``
        fragment (a page that is refused on purpose logs its own status)."""
        unexpected = [e for e in self.errors if not any(fragment in e for fragment in allowed)]
        assert not unexpected, "the page reported errors:\n" + "\n".join(unexpected)


def open_page(browser: Browser, base_url: str, test_name: str, **context: Any) -> ConsolePage:
    """A page in a fresh browser context (its own cookies), downloads allowed."""
    ctx = browser.new_context(accept_downloads=True, viewport={"width": 1280, "height": 860}, **context)
    return ConsolePage(ctx.new_page(), base_url, test_name)


def close_page(console_page: ConsolePage) -> None:
    from playwright.sync_api import Error

    with contextlib.suppress(Error):  # the browser already went away: nothing is left to close
        console_page.page.context.close()

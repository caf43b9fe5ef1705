"""The console in a real headless Chromium against a running platform: logging in, a ticket submitted in the form
reaching done live, a video approved at its gate and played, what a member may see, every architecture view drawn
by Mermaid and downloaded as SVG, no console error or CSP violation on any page, and the keyboard's first stop.

Screenshots of every page visited land in tests/artifacts/screenshots/ (see tests/browser.py)."""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from browser import CHROMIUM_ARGS, INSTALL_HINT, SKIP_ENV, TIMEOUT_MS, ConsolePage, chromium_path, close_page, open_page
from conftest import Platform, make_tenant, wait_online

if TYPE_CHECKING:
    from playwright.sync_api import Browser

UUID_PATH = re.compile(r"/tickets/([0-9a-f-]{36})$")
PAGES = ("/", "/tickets", "/approvals", "/bots", "/cost", "/connectors", "/apps", "/security", "/architecture")
# What each architecture view draws from the live platform: its bots, its stores, its workflows, its controls.
VIEW_SHOWS = {
    "system": ("echo (deterministic)", "renderer", "Postgres", "Redis"),
    "deployment": ("echo (deterministic)", "node host", "postgres", "redis"),
    "routing": ("HTTP request and auth gate", "bot runs it"),
    "integration": ("echo", "tool gateway", "connector runtime"),
    "workflows": ("video v1", "script_gate", "approval_required"),
    "security": ("enforced", "watched"),
    "business": ("no application is installed yet",),
}


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    """Debian's Chromium, headless, driven by Playwright; missing, it fails the tests unless they are skipped on
    purpose. Module-scoped and started after the platform: Playwright's sync API keeps an event loop running in
    this thread while it lives, so nothing here may call ``asyncio.run`` until it is closed."""
    path = chromium_path()
    if os.environ.get(SKIP_ENV) == "1":
        pytest.skip(f"{SKIP_ENV}=1: the browser tests are skipped (Chromium {'at ' + path if path else 'not found'})")
    if path is None:
        pytest.fail(f"no Chromium to run the console's browser tests: {INSTALL_HINT}", pytrace=False)
    try:
        from playwright.sync_api import Error, sync_playwright
    except ImportError:
        pytest.fail("the playwright package is missing: run `make dev` (it is in the dev extra)", pytrace=False)
    with sync_playwright() as driver:
        try:
            browser = driver.chromium.launch(executable_path=path, args=list(CHROMIUM_ARGS), timeout=TIMEOUT_MS)
        except Error as e:
            pytest.fail(f"Chromium at {path} did not start: {e}", pytrace=False)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def web(platform: Platform, chromium: Browser, request: pytest.FixtureRequest) -> Iterator[ConsolePage]:
    """A fresh browser context on the platform's console (``platform`` first: see ``chromium``)."""
    page = open_page(chromium, platform.url, request.node.name)
    try:
        yield page
    finally:
        close_page(page)


def _submit(web: ConsolePage, target: str, value: dict[str, object]) -> str:
    """Fill the Tickets page's form and submit it; the id of the ticket whose page it lands on."""
    web.goto("/tickets")
    web.page.get_by_label("For").select_option(target)
    web.page.get_by_label("Input (JSON)").fill(json.dumps(value))
    with web.page.expect_navigation(wait_until="load"):
        web.page.get_by_role("button", name="Submit").click()
    landed = UUID_PATH.search(web.page.url)
    assert landed, f"submitting landed on {web.page.url}: {web.text_of('main')[:500]}"
    return landed[1]


def test_logging_in_through_the_form_lands_on_the_overview(platform: Platform, web: ConsolePage) -> None:
    web.goto("/tickets")
    assert web.page.url.startswith(platform.url + "/login?next="), "a signed-out page sends to the login page"
    web.screenshot("login")
    web.login(platform.admin_key)
    web.page.get_by_role("heading", name="Fleet").wait_for()
    assert web.page.title() == "Overview · oshal"
    assert web.text_of(".who .role") == "platform operator"
    web.screenshot("overview")
    web.assert_no_errors()


def test_a_wrong_key_is_refused_on_the_login_page(platform: Platform, web: ConsolePage) -> None:
    web.goto("/login")
    web.page.get_by_label("API key").fill("osk_not-a-real-key")
    with web.page.expect_navigation(wait_until="load"):
        web.page.get_by_role("button", name="Log in").click()
    assert web.page.url == platform.url + "/login"
    alert = web.page.get_by_role("alert")
    assert "key" in alert.inner_text().lower()
    web.screenshot("refused")
    web.assert_no_errors("401")


def test_a_ticket_submitted_in_the_form_reaches_done_live(platform: Platform, web: ConsolePage) -> None:
    from playwright.sync_api import expect

    wait_online(platform, "echo")
    web.login(platform.admin_key)
    with platform.client() as api:
        # A kill switch holds echo's work (not failing it), so the page opens while the ticket still waits.
        held = api.post("/v1/kill", json={"bot": "echo", "reason": "held until the ticket page is open"})
        assert held.status_code == 201, held.text
        try:
            ticket_id = _submit(web, "bot:echo", {"text": "typed into a browser"})
            card = web.page.locator("#ticket")
            expect(card).to_have_attribute("data-current", "in_progress")  # the live stream's first event arrived
            assert web.text_of("[data-field=status]") == "in progress"
            assert web.text_of(".live-note") == "live"
            web.page.evaluate("window.oshalTestMark = 'before release'")
            web.screenshot("held")
        finally:
            released = api.delete("/v1/kill/echo")
        assert released.status_code == 200, released.text
    # The pill turns to done in the same document: no reload by the test, the mark set above is still there.
    web.page.wait_for_function(
        "() => window.oshalTestMark === 'before release'"
        " && document.querySelector('[data-field=status]').textContent === 'done'")
    # The page then reloads itself once to show the result and the full timeline.
    result = web.page.locator("section[aria-labelledby=result-h] pre")
    expect(result).to_contain_text("typed into a browser")
    expect(web.page.locator("[data-field=status]")).to_have_class(re.compile(r"\bst-done\b"))
    assert web.page.url == f"{platform.url}/tickets/{ticket_id}"
    web.screenshot("done")
    web.assert_no_errors()


def test_a_video_approved_at_its_gate_plays_in_the_ticket_page(platform: Platform, web: ConsolePage) -> None:
    from playwright.sync_api import expect

    for bot in ("scriptwriter", "storyboarder", "renderer", "editor"):
        wait_online(platform, bot)
    web.login(platform.admin_key)
    ticket_id = _submit(web, "type:video", {"topic": "How oshal runs bots. Tickets flow to lanes.", "scenes": 2,
                                            "seconds_per_scene": 0.5})
    status = web.page.locator("[data-field=status]")
    expect(status).to_have_text("approval required")
    expect(web.page.get_by_role("link", name="Decide at Approvals")).to_be_visible()
    web.screenshot("at-the-gate")

    web.goto("/approvals")
    row = web.page.get_by_role("row").filter(has=web.page.locator(f'a[href="/tickets/{ticket_id}"]'))
    expect(row).to_have_count(1)
    row.get_by_placeholder("reason (optional)").fill("the script reads well")
    web.screenshot("approvals")
    with web.page.expect_navigation(wait_until="load"):
        row.get_by_role("button", name="Approve").click()
    assert web.page.url == f"{platform.url}/tickets/{ticket_id}"

    expect(status).to_have_text("done")  # live, then the page reloads itself with the artifacts
    video = web.page.locator("ul.artifacts video")
    expect(video).to_have_count(1)
    web.page.wait_for_function(
        "() => { const v = document.querySelector('ul.artifacts video');"
        " return v !== null && (v.readyState >= 1 || v.error !== null); }")
    loaded = web.page.evaluate(
        "() => { const v = document.querySelector('ul.artifacts video');"
        " return {ready: v.readyState, duration: v.duration, width: v.videoWidth, height: v.videoHeight,"
        " error: v.error && `${v.error.code}: ${v.error.message}`}; }")
    assert loaded["error"] is None, f"Chromium could not load the MP4: {loaded}"
    assert loaded["ready"] >= 1 and loaded["duration"] > 0, loaded
    assert abs(loaded["duration"] - 1.0) < 0.1, loaded  # 2 scenes x 0.5 s
    assert (loaded["width"], loaded["height"]) == (320, 180), loaded
    # Playing decodes the H.264 frames: the clock only moves if they decode.
    web.page.evaluate("() => { const v = document.querySelector('ul.artifacts video'); v.muted = true;"
                      " return v.play(); }")
    web.page.wait_for_function(
        "() => { const v = document.querySelector('ul.artifacts video');"
        " return v.error !== null || v.currentTime > 0.2 || v.ended; }")
    played = web.page.evaluate("() => { const v = document.querySelector('ul.artifacts video');"
                               " return {time: v.currentTime, error: v.error && v.error.message}; }")
    assert played["error"] is None and played["time"] > 0.2, played
    expect(web.page.locator("ol.timeline")).to_contain_text("the script reads well")
    web.screenshot("video-done")
    web.assert_no_errors()


def test_a_member_sees_no_platform_pages_and_is_refused_them(platform: Platform, web: ConsolePage) -> None:
    from playwright.sync_api import expect

    tenant = make_tenant(platform, f"m-{uuid.uuid4().hex[:6]}", role="member")
    tenant.http.close()
    web.login(tenant.key)
    nav = web.page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link", name="Tickets")).to_be_visible()
    for label in ("Security", "Architecture"):
        expect(nav.get_by_role("link", name=label)).to_have_count(0)
    assert web.text_of(".who .tenant") == tenant.name and web.text_of(".who .role") == "member"
    web.screenshot("overview")
    refused = web.goto("/security")
    assert refused.status == 403
    expect(web.page.get_by_role("alert")).to_contain_text("operator key of the system tenant")
    web.screenshot("security-refused")
    web.assert_no_errors("403")


@pytest.mark.parametrize("view", [v for v in VIEW_SHOWS if v != "business"])
def test_each_architecture_view_is_drawn_from_the_live_platform(platform: Platform, web: ConsolePage,
                                                                view: str) -> None:
    from playwright.sync_api import expect

    wait_online(platform, "echo")
    web.login(platform.admin_key)
    web.goto(f"/architecture/{view}")
    drawing = web.page.locator("#diagram.drawn svg")
    expect(drawing).to_have_count(1)
    text = drawing.text_content() or ""
    missing = [part for part in VIEW_SHOWS[view] if part not in text]
    assert not missing, f"the {view} view does not show {missing}; it drew: {text[:1500]}"
    assert web.text_of(".diagram-status") == ""
    # Fitted to the page, but never shrunk past reading (a fleet's worth of bots scrolls in its box instead).
    scale = web.page.evaluate("() => { const svg = document.querySelector('#diagram svg');"
                              " return svg.getBoundingClientRect().width / svg.viewBox.baseVal.width; }")
    assert scale >= 0.6 - 1e-3, f"the {view} drawing is shrunk to {scale:.0%} of its size"
    web.screenshot(view)

    button = web.page.get_by_role("button", name="Download SVG")
    expect(button).to_be_enabled()
    with web.page.expect_download() as info:
        button.click()
    download = info.value
    assert download.suggested_filename == f"oshal-{view}.svg"
    saved = Path(download.path()).read_text()
    assert saved.startswith("<svg"), saved[:200]
    assert all(part in saved for part in VIEW_SHOWS[view]), f"the downloaded {view} view misses some parts"
    web.assert_no_errors()


def test_a_view_with_nothing_to_draw_says_so(platform: Platform, web: ConsolePage) -> None:
    from playwright.sync_api import expect

    web.login(platform.admin_key)
    web.goto("/architecture/business")
    expect(web.page.locator("#nothing-to-draw")).to_have_text("Nothing to draw in this view yet.")
    expect(web.page.locator(".diagram-card .notes")).to_contain_text(VIEW_SHOWS["business"][0])
    assert web.page.locator("#diagram").count() == 0
    assert web.page.get_by_role("button", name="Download SVG").count() == 0
    expect(web.page.get_by_role("link", name="Download Mermaid")).to_be_visible()
    web.screenshot("business")
    web.assert_no_errors()


def test_every_page_renders_without_console_errors(platform: Platform, web: ConsolePage) -> None:
    web.login(platform.admin_key)
    with platform.client() as api:
        created = api.post("/v1/tickets", json={"bot": "echo", "input": {"text": "a page to look at"}})
        assert created.status_code == 201, created.text
    for path in (*PAGES, f"/tickets/{created.json()['id']}"):
        response = web.goto(path)
        assert response.status == 200, (path, response.status)
        web.page.locator("main h1").wait_for()
        web.screenshot("ticket" if path.startswith("/tickets/") else path.strip("/") or "overview")
    web.assert_no_errors()


def test_tab_from_the_page_start_reaches_skip_to_content_first(platform: Platform, web: ConsolePage) -> None:
    from playwright.sync_api import expect

    web.login(platform.admin_key)
    web.goto("/tickets")
    web.page.keyboard.press("Tab")
    focused = web.page.evaluate("() => [document.activeElement.textContent.trim(),"
                                " document.activeElement.getAttribute('href')]")
    assert focused == ["Skip to content", "#main"]
    expect(web.page.get_by_role("link", name="Skip to content")).to_be_in_viewport()
    web.screenshot("skip-link-focused")
    web.page.keyboard.press("Enter")
    assert web.page.evaluate("() => document.activeElement.id") == "main"
    web.assert_no_errors()

"""Every console page, as the kinds of callers it serves and refuses, against a running platform."""

from __future__ import annotations

import re
import time
import uuid

import pytest

from conftest import Platform, make_tenant, wait_done
from console_client import Console, signed_in

MEMBER_PAGES = ("/", "/tickets", "/approvals", "/bots", "/cost", "/connectors", "/apps")
PLATFORM_PAGES = ("/security", "/architecture", *(f"/architecture/{v}" for v in
                                                  ("system", "deployment", "routing", "integration", "workflows",
                                                   "security", "business")))


def _tenant(pf: Platform, role: str) -> tuple[Console, str, str]:
    name = f"t-{uuid.uuid4().hex[:6]}"
    tenant = make_tenant(pf, name, role=role)
    tenant.http.close()
    return signed_in(pf, tenant.key), name, tenant.key


@pytest.mark.parametrize("path", MEMBER_PAGES + PLATFORM_PAGES)
def test_each_page_renders_for_a_platform_operator_with_its_landmarks(platform: Platform, path: str) -> None:
    with signed_in(platform, platform.admin_key) as console:
        page = console.get(path)
        assert page.status_code == 200, page.text[:2000]
        assert page.headers["content-type"].startswith("text/html")
        assert "default-src 'self'" in page.headers["content-security-policy"]
        for landmark in ('<main id="main"', '<nav aria-label="Main">', "<h1>", 'lang="en"'):
            assert landmark in page.text, landmark
        assert 'href="/security"' in page.text  # a platform operator's navigation names its pages


def test_a_member_sees_its_pages_and_is_refused_the_platforms(platform: Platform) -> None:
    console, name, _ = _tenant(platform, "member")
    with console:
        for path in MEMBER_PAGES:
            page = console.get(path)
            assert page.status_code == 200, (path, page.text[:500])
            assert 'href="/security"' not in page.text and 'href="/architecture"' not in page.text
            assert name in page.text
        for path in PLATFORM_PAGES:
            refused = console.get(path)
            assert refused.status_code == 403, path
            assert "operator key of the system tenant" in refused.text
        assert console.get("/architecture/system.mmd").status_code == 403


def test_a_tenant_operator_is_refused_the_platforms_pages_too(platform: Platform) -> None:
    console, _, _ = _tenant(platform, "operator")
    with console:
        assert console.get("/security").status_code == 403
        assert console.post("/security/scan", {"name": "posture"}, from_page="/tickets").status_code == 403


def test_a_ticket_submitted_in_the_console_runs_and_its_page_shows_the_result(platform: Platform) -> None:
    with signed_in(platform, platform.admin_key) as console:
        posted = console.post("/tickets", {"target": "bot:echo", "input": '{"text": "from the console"}'},
                              from_page="/tickets")
        assert posted.status_code == 303, posted.text[:1000]
        ticket_id = posted.headers["location"].rsplit("/", 1)[1]
        with platform.client() as api:
            assert wait_done(api, ticket_id)["status"] == "done"
        page = console.get(f"/tickets/{ticket_id}")
        assert page.status_code == 200
        assert "from the console" in page.text and "st-done" in page.text
        listed = console.get("/tickets?status=done")
        assert ticket_id[:8] in listed.text


def test_the_live_stream_reports_the_ticket_until_it_ends(platform: Platform) -> None:
    with signed_in(platform, platform.admin_key) as console, platform.client() as api:
        created = api.post("/v1/tickets", json={"bot": "echo", "input": {"text": "live"}}).json()
        events = []
        with console.http.stream("GET", f"/tickets/{created['id']}/live") as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            for line in stream.iter_lines():
                if line.startswith("data: "):
                    events.append(line)
                    if '"terminal": true' in line:
                        break
        assert events and '"status": "done"' in events[-1]


def test_bad_form_input_is_a_page_that_says_what_to_fix(platform: Platform) -> None:
    with signed_in(platform, platform.admin_key) as console:
        bad_json = console.post("/tickets", {"target": "bot:echo", "input": "{not json"}, from_page="/tickets")
        assert bad_json.status_code == 422 and "not valid JSON" in bad_json.text
        assert "{not json" in bad_json.text  # what was typed is kept in the form
        unknown = console.post("/tickets", {"target": "bot:nobody", "input": "{}"}, from_page="/tickets")
        assert unknown.status_code in (404, 422) and "nobody" in unknown.text
        nonsense = console.post("/tickets", {"target": "robot:echo"}, from_page="/tickets")
        assert nonsense.status_code == 422
        assert console.get("/tickets?status=bogus").status_code == 422
        assert console.get("/tickets/not-a-uuid").status_code == 422
        assert console.get(f"/tickets/{uuid.uuid4()}").status_code == 404
        nul = console.post("/tickets", {"target": "bot:echo", "input": '{"a": "\u0000"}'}, from_page="/tickets")
        assert nul.status_code == 422


def test_another_tenants_ticket_is_not_found_in_the_console(platform: Platform) -> None:
    with platform.client() as api:
        theirs = api.post("/v1/tickets", json={"bot": "echo", "input": {"secret": "system-only"}}).json()["id"]
    console, _, _ = _tenant(platform, "operator")
    with console:
        for path in (f"/tickets/{theirs}", f"/tickets/{theirs}/live", f"/tickets/{theirs}/artifacts/x.mp4"):
            page = console.get(path)
            assert page.status_code == 404, path
            assert "system-only" not in page.text
        replay = console.post(f"/tickets/{theirs}/replay", from_page="/tickets")
        assert replay.status_code == 404
        listed = console.get("/tickets")
        assert theirs[:8] not in listed.text


def test_the_overview_counts_the_tenants_own_work(platform: Platform) -> None:
    console, _, key = _tenant(platform, "member")
    with console, platform.client(key) as api:
        for _ in range(3):
            api.post("/v1/tickets", json={"bot": "echo", "input": {"n": 1}})
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            page = console.get("/").text
            found = re.search(r'<span class="value">(\d+)</span><span class="label">done</span>', page)
            if found and int(found[1]) == 3:
                break
            time.sleep(0.2)
        assert found and int(found[1]) == 3
        assert re.search(r'<span class="value">3</span><span class="label">tickets in the last 24 h', page)
        assert "Tickets done per hour" in page


def test_the_architecture_downloads_are_the_live_views(platform: Platform) -> None:
    with signed_in(platform, platform.admin_key) as console:
        mermaid = console.get("/architecture/deployment.mmd")
        assert mermaid.status_code == 200 and "flowchart TD" in mermaid.text
        assert "attachment" in mermaid.headers["content-disposition"]
        assert "bot_echo[" in mermaid.text and "store_postgres[" in mermaid.text
        assert console.get("/architecture/system.dot").text.startswith("digraph")
        assert console.get("/architecture/system.json").json()["view"] == "system"
        assert console.get("/architecture/nowhere").status_code == 422
        assert console.get("/architecture/system.exe").status_code == 422

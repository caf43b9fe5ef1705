"""Signing in to the console: an API key traded for a session cookie that acts exactly as the key."""

from __future__ import annotations

import uuid

from conftest import Platform, make_tenant
from console_client import Console, csrf_of, signed_in


def test_a_key_is_traded_for_an_httponly_strict_session_cookie_and_the_key_is_not_kept(platform: Platform) -> None:
    with Console(platform) as console:
        response = console.login(platform.admin_key)
        assert response.status_code == 303
        cookie = response.headers["set-cookie"]
        assert "oshal_session=oss_" in cookie
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
        assert platform.admin_key not in cookie
        overview = console.get("/")
        assert overview.status_code == 200
        assert "Overview" in overview.text and "platform operator" in overview.text
    with platform.owner() as conn:
        rows = conn.execute("SELECT digest FROM console_sessions").fetchall()
    assert rows and all(len(bytes(r[0])) == 32 for r in rows)  # only digests are stored


def test_a_wrong_key_is_refused_with_a_clear_message_and_no_session(platform: Platform) -> None:
    with Console(platform) as console:
        page = console.get("/login")
        bad = console.http.post("/login", data={"csrf": csrf_of(page.text), "key": "osk_000000000000_nope"})
        assert bad.status_code == 401
        assert "invalid API key" in bad.text
        assert "oshal_session" not in bad.headers.get("set-cookie", "")
        malformed = console.http.post("/login", data={"csrf": csrf_of(page.text), "key": "hello"})
        assert malformed.status_code == 401 and "malformed API key" in malformed.text


def test_signed_out_pages_send_the_browser_to_log_in_and_back(platform: Platform) -> None:
    with Console(platform) as console:
        response = console.get("/tickets?status=done")
        assert response.status_code == 303
        assert response.headers["location"] == "/login?next=%2Ftickets%3Fstatus%3Ddone"
        page = console.get(response.headers["location"])
        assert 'name="next" value="/tickets?status=done"' in page.text
        posted = console.http.post("/login", data={"csrf": csrf_of(page.text), "key": platform.admin_key,
                                                   "next": "/tickets?status=done"})
        assert posted.headers["location"] == "/tickets?status=done"


def test_login_never_redirects_to_another_site(platform: Platform) -> None:
    for target in ("https://evil.example", "//evil.example/x", "/\\evil.example"):
        with Console(platform) as console:
            page = console.get("/login")
            posted = console.http.post("/login", data={"csrf": csrf_of(page.text), "key": platform.admin_key,
                                                       "next": target})
            assert posted.status_code == 303
            assert posted.headers["location"] == "/", target


def test_a_form_without_its_csrf_token_or_from_another_site_changes_nothing(platform: Platform) -> None:
    with signed_in(platform, platform.admin_key) as console:
        no_token = console.http.post("/tickets", data={"target": "bot:echo", "input": "{}"})
        assert no_token.status_code == 403 and "security token" in no_token.text
        wrong = console.http.post("/tickets", data={"csrf": "x" * 43, "target": "bot:echo", "input": "{}"})
        assert wrong.status_code == 403
        page = console.get("/tickets")
        cross = console.http.post("/tickets", data={"csrf": csrf_of(page.text), "target": "bot:echo"},
                                  headers={"Origin": "https://evil.example"})
        assert cross.status_code == 403 and "another site" in cross.text
        with platform.owner() as conn:
            assert conn.execute("SELECT count(*) FROM tickets").fetchone()[0] == 0
        # a login form's token is no session's token
        with Console(platform) as other:
            login_token = csrf_of(other.get("/login").text)
        stolen = console.http.post("/tickets", data={"csrf": login_token, "target": "bot:echo"})
        assert stolen.status_code == 403


def test_logout_ends_the_session_on_the_server(platform: Platform) -> None:
    console = signed_in(platform, platform.admin_key)
    token = console.http.cookies["oshal_session"]
    out = console.post("/logout")
    assert out.status_code == 303 and out.headers["location"] == "/login"
    with Console(platform) as replay:  # the old cookie, presented again, is dead
        replay.http.cookies.set("oshal_session", token)
        assert replay.get("/").status_code == 303
    console.http.close()


def test_revoking_the_key_ends_its_sessions(platform: Platform) -> None:
    name = f"rev-{uuid.uuid4().hex[:6]}"
    tenant = make_tenant(platform, name, role="operator")
    console = signed_in(platform, tenant.key)
    assert console.get("/").status_code == 200
    key_id = tenant.http.get("/v1/whoami").json()["key_id"]
    revoked = tenant.http.delete(f"/v1/keys/{key_id}")
    assert revoked.status_code in (200, 204), revoked.text
    assert console.get("/").status_code == 303  # the cache forgets the key at once in this process
    console.http.close()
    tenant.http.close()


def test_a_forged_or_garbage_cookie_is_just_signed_out(platform: Platform) -> None:
    for value in ("oss_" + "A" * 43, "garbage", "oss_" + "x" * 500, ""):
        with Console(platform) as console:
            console.http.cookies.set("oshal_session", value)
            assert console.get("/").status_code == 303

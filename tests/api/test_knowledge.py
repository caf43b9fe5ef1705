"""The knowledge store over the API: documents by (collection, slug), ranked full-text search, tenant isolation."""

from __future__ import annotations

from typing import Any

import httpx

from conftest import Platform, TenantClient, make_tenant

DEAD_BOT = {"title": "Dead bot", "tags": ["fleet", "restart"], "source": "runbooks/dead-bot.md",
            "body": "# Symptoms\nA bot shows offline and its lane grows.\n\n# Fix\nRestart the node host; check the "
                    "heartbeat key and the replicas."}


def _operator(platform: Platform, name: str) -> TenantClient:
    return make_tenant(platform, name, role="operator")


def _put(http: httpx.Client, collection: str, slug: str, document: dict[str, Any],
         status: int = 201) -> dict[str, Any]:
    response = http.put(f"/v1/knowledge/{collection}/{slug}", json=document)
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    return body


def _search(http: httpx.Client, q: str, **params: Any) -> list[dict[str, Any]]:
    response = http.get("/v1/knowledge/search", params={"q": q, **params})
    assert response.status_code == 200, response.text
    results: list[dict[str, Any]] = response.json()["results"]
    return results


def test_an_operator_adds_replaces_lists_reads_and_deletes_a_document(platform: Platform) -> None:
    ops = _operator(platform, "kb-ops")
    created = _put(ops.http, "runbooks", "dead-bot", DEAD_BOT)
    assert (created["collection"], created["slug"], created["title"]) == ("runbooks", "dead-bot", "Dead bot")
    assert created["tags"] == ["fleet", "restart"] and created["source"] == "runbooks/dead-bot.md"
    key_id = ops.http.get("/v1/whoami").json()["key_id"]
    assert created["created_by"] == created["updated_by"] == key_id

    replaced = _put(ops.http, "runbooks", "dead-bot", {**DEAD_BOT, "title": "Dead bot (v2)", "tags": ["fleet"]},
                    status=200)
    assert replaced["id"] == created["id"] and replaced["created_at"] == created["created_at"]
    assert replaced["title"] == "Dead bot (v2)" and replaced["tags"] == ["fleet"]
    assert replaced["updated_at"] > created["updated_at"]

    shown = ops.http.get("/v1/knowledge/runbooks/dead-bot")
    assert shown.status_code == 200 and shown.json()["body"] == DEAD_BOT["body"]
    assert shown.json()["title"] == "Dead bot (v2)"

    _put(ops.http, "runbooks", "stuck-lane", {"title": "Stuck lane", "body": "Requeue the dead letters."})
    _put(ops.http, "incidents", "inc-1", {"title": "Echo went down", "body": "The echo bot died."})
    listed = ops.http.get("/v1/knowledge/runbooks").json()
    assert [d["slug"] for d in listed["items"]] == ["dead-bot", "stuck-lane"]
    assert "body" not in listed["items"][0] and listed["next_cursor"] is None
    assert ops.http.get("/v1/knowledge/no-such-collection").json() == {"items": [], "next_cursor": None}

    deleted = ops.http.delete("/v1/knowledge/runbooks/dead-bot")
    assert deleted.status_code == 204
    assert ops.http.get("/v1/knowledge/runbooks/dead-bot").status_code == 404
    again = ops.http.delete("/v1/knowledge/runbooks/dead-bot")
    assert again.status_code == 404 and "dead-bot" in again.json()["message"]
    assert [d["slug"] for d in ops.http.get("/v1/knowledge/runbooks").json()["items"]] == ["stuck-lane"]
    # every write is in the tenant's audit log
    entries = ops.http.get("/v1/audit", params={"limit": 100}).json()
    writes = [(e["action"], e["target"]) for e in entries if e["target"].startswith("/v1/knowledge/")]
    assert writes.count(("operator.put", "/v1/knowledge/runbooks/dead-bot")) == 2
    assert writes.count(("operator.delete", "/v1/knowledge/runbooks/dead-bot")) == 2


def test_a_collection_pages_by_slug(platform: Platform) -> None:
    ops = _operator(platform, "kb-pages")
    slugs = [f"doc-{i:02}" for i in range(5)]
    for slug in reversed(slugs):
        _put(ops.http, "runbooks", slug, {"title": slug, "body": "text"})
    seen, cursor = [], None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = ops.http.get("/v1/knowledge/runbooks", params=params).json()
        assert len(page["items"]) <= 2
        seen += [d["slug"] for d in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == slugs


def test_search_ranks_a_title_match_above_a_body_match_and_snippets_the_body(platform: Platform) -> None:
    ops = _operator(platform, "kb-search")
    _put(ops.http, "runbooks", "body-match", {"title": "Queue housekeeping",
                                               "body": "Now and then a redis instance needs a restart."})
    _put(ops.http, "runbooks", "title-match", {"title": "Redis is down",
                                                "body": "Check the engine health and restart the engine."})
    _put(ops.http, "runbooks", "tag-match", {"title": "Engine outage", "tags": ["redis"],
                                              "body": "Look at the supervisor's log."})
    _put(ops.http, "runbooks", "unrelated", {"title": "Budget exhausted", "body": "Raise the budget."})

    hits = _search(ops.http, "redis")
    assert [h["slug"] for h in hits] == ["title-match", "tag-match", "body-match"]
    assert hits[0]["rank"] > hits[1]["rank"] > hits[2]["rank"] > 0
    assert "**redis**" in hits[2]["snippet"].lower()
    assert "body" not in hits[0]

    # English stemming and web-search syntax: "restarts" finds "restart", -word excludes, "a phrase" is a phrase
    assert {h["slug"] for h in _search(ops.http, "restarts")} == {"body-match", "title-match"}
    assert [h["slug"] for h in _search(ops.http, "restart -engine")] == ["body-match"]
    assert [h["slug"] for h in _search(ops.http, '"raise the budget"')] == ["unrelated"]
    assert _search(ops.http, "the and of") == []  # stop words only: nothing to match
    assert _search(ops.http, "nonexistentword") == []
    assert len(_search(ops.http, "redis", limit=1)) == 1

    _put(ops.http, "incidents", "inc-7", {"title": "Redis went away at night", "body": "Redis restarted."})
    assert [h["slug"] for h in _search(ops.http, "redis", collection="incidents")] == ["inc-7"]
    assert len(_search(ops.http, "redis")) == 4


def test_another_tenant_cannot_see_find_change_or_delete_a_document(platform: Platform) -> None:
    a, b = _operator(platform, "kb-alpha"), _operator(platform, "kb-bravo")
    marker = "zanzibarquokka"
    _put(a.http, "runbooks", "secret-plan", {"title": f"The {marker} runbook", "body": f"{marker} steps"})

    assert b.http.get("/v1/knowledge/runbooks").json()["items"] == []
    assert b.http.get("/v1/knowledge/runbooks/secret-plan").status_code == 404
    assert _search(b.http, marker) == []
    assert b.http.delete("/v1/knowledge/runbooks/secret-plan").status_code == 404
    # B's document of the same name is B's own; A's stays as it was
    mine = _put(b.http, "runbooks", "secret-plan", {"title": "B's plan", "body": "nothing to see"})
    theirs = a.http.get("/v1/knowledge/runbooks/secret-plan").json()
    assert mine["id"] != theirs["id"] and theirs["title"] == f"The {marker} runbook"
    assert [h["slug"] for h in _search(a.http, marker)] == ["secret-plan"]
    assert _search(b.http, marker) == []


def test_a_member_reads_and_searches_but_cannot_write(platform: Platform) -> None:
    ops = _operator(platform, "kb-team")
    _put(ops.http, "runbooks", "dead-bot", DEAD_BOT)
    with platform.client() as admin:
        member = admin.post("/v1/keys", json={"tenant": ops.tenant_id, "role": "member", "name": "reader"})
    assert member.status_code == 201, member.text
    with platform.client(member.json()["key"]) as reader:
        assert reader.get("/v1/knowledge/runbooks/dead-bot").status_code == 200
        assert [h["slug"] for h in _search(reader, "heartbeat")] == ["dead-bot"]
        refused = reader.put("/v1/knowledge/runbooks/dead-bot", json={**DEAD_BOT, "title": "changed"})
        assert refused.status_code == 403 and "operator" in refused.json()["message"]
        assert reader.delete("/v1/knowledge/runbooks/dead-bot").status_code == 403
    assert ops.http.get("/v1/knowledge/runbooks/dead-bot").json()["title"] == "Dead bot"


def _problem(response: httpx.Response) -> str:
    assert response.status_code == 422, response.text
    return str(response.json())


def test_bad_input_is_refused_with_a_message_that_says_what_is_wrong(platform: Platform) -> None:
    ops = _operator(platform, "kb-bad")
    http = ops.http
    good = {"title": "Fine", "body": "text"}
    assert "collection name" in _problem(http.put("/v1/knowledge/Runbooks/x", json=good))
    assert "reserved" in _problem(http.put("/v1/knowledge/search/x", json=good))
    assert "document slug" in _problem(http.put("/v1/knowledge/runbooks/-x", json=good))
    assert "document slug" in _problem(http.put(f"/v1/knowledge/runbooks/{'a' * 101}", json=good))
    assert "title" in _problem(http.put("/v1/knowledge/runbooks/x", json={**good, "title": "a" * 201}))
    assert "blank" in _problem(http.put("/v1/knowledge/runbooks/x", json={**good, "title": "   "}))
    assert "one line" in _problem(http.put("/v1/knowledge/runbooks/x", json={**good, "title": "a\nb"}))
    too_big = "é" * (128 * 1024 + 1)  # within the character limit, over 256 KiB of UTF-8
    assert "256 KiB" in _problem(http.put("/v1/knowledge/runbooks/x", json={**good, "body": too_big}))
    assert "tags" in _problem(http.put("/v1/knowledge/runbooks/x",
                                       json={**good, "tags": [f"t{i}" for i in range(21)]}))
    assert "'Bad Tag'" in _problem(http.put("/v1/knowledge/runbooks/x", json={**good, "tags": ["ok", "Bad Tag"]}))
    assert "extra" in _problem(http.put("/v1/knowledge/runbooks/x", json={**good, "owner": "me"}))
    assert "NUL" in _problem(http.put("/v1/knowledge/runbooks/x", json={**good, "body": "a\u0000b"}))
    assert "q" in _problem(http.get("/v1/knowledge/search"))
    assert "q" in _problem(http.get("/v1/knowledge/search", params={"q": "x" * 501}))
    assert "limit" in _problem(http.get("/v1/knowledge/search", params={"q": "x", "limit": 51}))
    assert "collection name" in _problem(http.get("/v1/knowledge/search", params={"q": "x", "collection": "A"}))
    assert "document slug" in _problem(http.get("/v1/knowledge/runbooks", params={"cursor": "../x"}))

    assert "'trailing '" in _problem(http.put("/v1/knowledge/runbooks/x", json={**good, "tags": ["trailing "]}))
    assert http.get("/v1/knowledge/runbooks").json()["items"] == []  # nothing was written

    # names as the ops app's runbook files have them, and spaced tags as its runbooks carry them
    spaced = _put(http, "runbooks", "dead_bot.v2", {**good, "tags": ["node host", "dead_bot", "401"]})
    assert spaced["slug"] == "dead_bot.v2" and spaced["tags"] == ["node host", "dead_bot", "401"]
    assert [h["slug"] for h in _search(http, "node host")] == ["dead_bot.v2"]
    exactly = "a" * (256 * 1024)
    stored = _put(http, "runbooks", "big", {"title": "t" * 200, "body": exactly, "tags": ["a", "a", "b"]})
    assert stored["tags"] == ["a", "b"]  # a repeated tag is kept once
    assert len(http.get("/v1/knowledge/runbooks/big").json()["body"]) == 256 * 1024

"""The ticket API end to end over real HTTP: create, wait, read, list, cancel, events, ledger, probes."""

from __future__ import annotations

import json
import threading

import httpx

from conftest import Platform, TenantClient, wait_done


def test_echo_ticket_runs_end_to_end_with_a_ledger_row(platform: Platform, tenant_client: TenantClient) -> None:
    created = tenant_client.http.post("/v1/tickets", json={"bot": "echo", "input": {"hello": "world"}})
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["created"] is True and body["status"] == "in_progress"

    ticket = wait_done(tenant_client.http, body["id"])
    assert ticket["status"] == "done"
    assert ticket["result"] == {"hello": "world"}
    assert ticket["attempts"] == 1 and ticket["deliveries"] == 1
    assert ticket["calls"] == 1 and ticket["cost_micros"] == 0
    assert ticket["finished_at"] >= ticket["created_at"]

    ledger = tenant_client.http.get("/v1/ledger", params={"ticket": body["id"]}).json()["items"]
    assert len(ledger) == 1
    row = ledger[0]
    assert row["bot"] == "echo" and row["provider"] == "deterministic" and row["model"] == "deterministic-echo"
    assert row["call_id"] == f"{row['call_id'].split(':')[0]}:1:0"
    assert row["input_tokens"] > 0 and row["output_tokens"] > 0
    assert row["price_source"] == "estimated" and row["tenant_id"] == tenant_client.tenant_id


def test_every_demo_bot_produces_its_intent(platform: Platform, tenant_client: TenantClient) -> None:
    cases = {
        "summarizer": ({"text": "First one. Second one. Third one."}, {"summary": "First one. Second one.",
                                                                       "sentences": 3, "words": 6}),
        "triage": ({"text": "The site is down with a 500 error"}, None),
        "extractor": ({"text": "mail ops@example.com or see https://example.com/x"}, None),
        "planner": ({"goal": "write the spec then build it then ship"}, None),
        "reviewer": ({"text": "This change is complete and tested carefully."}, {"verdict": "approve",
                                                                                 "issues": []}),
    }
    ids = {}
    for bot, (value, _) in cases.items():
        ids[bot] = tenant_client.http.post("/v1/tickets", json={"bot": bot, "input": value}).json()["id"]
    results = {bot: wait_done(tenant_client.http, tid) for bot, tid in ids.items()}
    for bot, (_, expected) in cases.items():
        assert results[bot]["status"] == "done", results[bot]
        if expected is not None:
            assert results[bot]["result"] == expected
    assert results["triage"]["result"]["label"] == "incident"
    assert results["extractor"]["result"]["emails"] == ["ops@example.com"]
    assert [s["do"] for s in results["planner"]["result"]["steps"]] == ["write the spec", "build it", "ship"]


def test_intent_rejecting_its_input_fails_the_ticket_with_the_reason(platform: Platform,
                                                                     tenant_client: TenantClient) -> None:
    tid = tenant_client.http.post("/v1/tickets", json={"bot": "summarizer", "input": {"nope": 1}}).json()["id"]
    ticket = wait_done(tenant_client.http, tid)
    assert ticket["status"] == "failed"
    assert "expects input.text" in ticket["error"]
    assert ticket["calls"] == 0


def test_batch_create_list_and_cursor_pagination(platform: Platform, tenant_client: TenantClient) -> None:
    batch = {"tickets": [{"bot": "echo", "input": {"n": i}} for i in range(25)]}
    response = tenant_client.http.post("/v1/tickets/batch", json=batch)
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["created"] == 25 and created["existing"] == 0
    for t in created["tickets"]:
        wait_done(tenant_client.http, t["id"])

    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 10, "status": "done", **({"cursor": cursor} if cursor else {})}
        page = tenant_client.http.get("/v1/tickets", params=params).json()
        seen.extend(item["id"] for item in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(t["id"] for t in created["tickets"])
    assert seen == sorted(seen, reverse=True)  # newest first
    assert tenant_client.http.get("/v1/tickets", params={"bot": "triage"}).json()["items"] == []


def test_idempotency_key_returns_the_same_ticket(platform: Platform, tenant_client: TenantClient) -> None:
    body = {"bot": "echo", "input": {"x": 1}, "idempotency_key": "order-42"}
    first = tenant_client.http.post("/v1/tickets", json=body)
    second = tenant_client.http.post("/v1/tickets", json=body)
    assert first.status_code == 201 and second.status_code == 200
    assert first.json()["id"] == second.json()["id"] and second.json()["created"] is False

    reused = tenant_client.http.post("/v1/tickets", json={**body, "input": {"x": 2}})
    assert reused.status_code == 409
    assert "order-42" in reused.json()["message"]


def test_concurrent_duplicate_requests_create_exactly_one_ticket(platform: Platform,
                                                                  tenant_client: TenantClient) -> None:
    body = {"bot": "echo", "input": {"pay": 100}, "idempotency_key": "pay-1"}
    ids: list[str] = []
    statuses: list[int] = []
    barrier = threading.Barrier(16)

    def post() -> None:
        with httpx.Client(base_url=platform.url, headers=tenant_client.http.headers, timeout=30) as http:
            barrier.wait()
            response = http.post("/v1/tickets", json=body)
            statuses.append(response.status_code)
            ids.append(response.json()["id"])

    threads = [threading.Thread(target=post) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(ids)) == 1 and len(ids) == 16
    assert sorted(statuses).count(201) == 1 and statuses.count(200) == 15
    wait_done(tenant_client.http, ids[0])
    with platform.superuser() as conn:
        count = conn.execute("SELECT count(*) FROM tickets WHERE idempotency_key = 'pay-1'").fetchone()
        ledger = conn.execute("SELECT count(*) FROM ledger WHERE ticket_id = %s", (ids[0],)).fetchone()
    assert count == (1,) and ledger == (1,)


def test_cancel_before_it_runs_and_conflict_after_it_finished(platform: Platform,
                                                               tenant_client: TenantClient) -> None:
    # Nobody runs the `idle` bot, so its ticket stays dispatched until cancelled.
    tid = tenant_client.http.post("/v1/tickets", json={"bot": "idle", "input": {}}).json()["id"]
    cancelled = tenant_client.http.post(f"/v1/tickets/{tid}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    again = tenant_client.http.post(f"/v1/tickets/{tid}/cancel")
    assert again.status_code == 409 and "it is cancelled" in again.json()["message"]

    done = tenant_client.http.post("/v1/tickets", json={"bot": "echo", "input": 1}).json()["id"]
    wait_done(tenant_client.http, done)
    assert tenant_client.http.post(f"/v1/tickets/{done}/cancel").status_code == 409


def test_wait_returns_the_unfinished_ticket_when_time_runs_out(platform: Platform,
                                                               tenant_client: TenantClient) -> None:
    tid = tenant_client.http.post("/v1/tickets", json={"bot": "idle", "input": {}}).json()["id"]
    ticket = tenant_client.http.get(f"/v1/tickets/{tid}", params={"wait": 0.3}).json()
    assert ticket["status"] == "in_progress" and ticket["finished_at"] is None


def test_events_stream_ends_with_the_terminal_state(platform: Platform, tenant_client: TenantClient) -> None:
    tid = tenant_client.http.post("/v1/tickets", json={"bot": "idle", "input": {}}).json()["id"]
    events: list[tuple[str, dict[str, object]]] = []
    with tenant_client.http.stream("GET", f"/v1/tickets/{tid}/events") as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        name = ""
        for line in stream.iter_lines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                events.append((name, json.loads(line[6:])))
                if len(events) == 1:
                    tenant_client.http.post(f"/v1/tickets/{tid}/cancel")
    assert [e[0] for e in events] == ["in_progress", "cancelled"]
    assert events[-1][1]["id"] == tid


def test_bots_lists_the_fleet_with_live_status(platform: Platform, tenant_client: TenantClient) -> None:
    bots = {b["name"]: b for b in tenant_client.http.get("/v1/bots").json()}
    assert {"echo", "summarizer", "triage", "extractor", "planner", "reviewer"} <= set(bots)
    assert bots["echo"]["status"] == "online" and bots["echo"]["replicas"] == 1
    assert bots["triage"]["replicas"] == 2 and bots["triage"]["replicas_desired"] == 2
    assert bots["idle"]["status"] == "offline" and bots["idle"]["replicas"] == 0
    assert bots["echo"]["lane"] == "oshal:lane:echo"
    tenant_client.http.post("/v1/tickets/batch", json={"tickets": [{"bot": "idle", "input": i} for i in range(3)]})
    idle = next(b for b in tenant_client.http.get("/v1/bots").json() if b["name"] == "idle")
    assert idle["lag"] == 3 and idle["pending"] == 0


def test_ledger_summary_groups_by_bot_model_tenant_and_day(platform: Platform,
                                                           tenant_client: TenantClient) -> None:
    ids = [tenant_client.http.post("/v1/tickets", json={"bot": bot, "input": {"text": "a b c."}}).json()["id"]
           for bot in ("echo", "echo", "summarizer")]
    for tid in ids:
        wait_done(tenant_client.http, tid)
    by_bot = tenant_client.http.get("/v1/ledger/summary", params={"by": "bot"}).json()
    calls = {row["key"]: row["calls"] for row in by_bot["rows"]}
    assert calls == {"echo": 2, "summarizer": 1}
    by_model = tenant_client.http.get("/v1/ledger/summary", params={"by": "model"}).json()
    assert {r["key"] for r in by_model["rows"]} == {"deterministic/deterministic-echo",
                                                     "deterministic/deterministic-summarize"}
    by_tenant = tenant_client.http.get("/v1/ledger/summary", params={"by": "tenant"}).json()
    assert [r["key"] for r in by_tenant["rows"]] == [tenant_client.tenant_id]
    by_day = tenant_client.http.get("/v1/ledger/summary", params={"by": "day"}).json()
    assert len(by_day["rows"]) == 1 and by_day["rows"][0]["calls"] == 3
    bad = tenant_client.http.get("/v1/ledger/summary", params={"by": "planet"})
    assert bad.status_code == 422


def test_probes_are_public_and_everything_else_needs_a_key(platform: Platform) -> None:
    assert httpx.get(f"{platform.url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{platform.url}/readyz").json()
    assert ready["status"] == "ready" and ready["checks"] == {"postgres": "ok", "redis": "ok"}
    assert {name: engine["ready"] for name, engine in ready["engines"].items()} == {"postgres": True, "redis": True}
    metrics = httpx.get(f"{platform.url}/metrics")
    assert metrics.status_code == 200 and "oshal_tickets_created_total" in metrics.text
    docs = httpx.get(f"{platform.url}/docs")
    assert docs.status_code == 401 and docs.headers["www-authenticate"].startswith("Basic")
    assert httpx.get(f"{platform.url}/docs", auth=("admin", platform.admin_key)).status_code == 200
    spec = httpx.get(f"{platform.url}/openapi.json", headers={"Authorization": f"Bearer {platform.admin_key}"})
    assert "/v1/tickets" in spec.json()["paths"]


def test_create_with_wait_returns_the_finished_ticket_in_one_request(platform: Platform,
                                                                     tenant_client: TenantClient) -> None:
    body = {"bot": "echo", "input": {"sync": True}, "idempotency_key": "sync-1"}
    response = tenant_client.http.post("/v1/tickets", params={"wait": 10}, json=body)
    assert response.status_code == 201, response.text
    ticket = response.json()
    assert ticket["status"] == "done" and ticket["result"] == {"sync": True} and ticket["created"] is True
    assert ticket["calls"] == 1
    again = tenant_client.http.post("/v1/tickets", params={"wait": 10}, json=body)
    assert again.status_code == 200 and again.json()["id"] == ticket["id"] and again.json()["created"] is False
    pending = tenant_client.http.post("/v1/tickets", params={"wait": 0.2}, json={"bot": "idle", "input": {}})
    assert pending.status_code == 201 and pending.json()["status"] == "in_progress"

"""The built-in pipelines end to end on the deterministic harness, over real HTTP, engines and bots."""

from __future__ import annotations

from typing import Any

import httpx
import imageio_ffmpeg
import pytest

from conftest import Platform, TenantClient, make_tenant, wait_done


@pytest.fixture
def operator(platform: Platform) -> Any:
    tc = make_tenant(platform, "ops", role="operator")
    yield tc
    tc.http.close()


def submit(http: httpx.Client, type_: str, value: dict[str, Any], **extra: Any) -> dict[str, Any]:
    created = http.post("/v1/tickets", json={"type": type_, "input": value, **extra})
    assert created.status_code == 201, created.text
    return wait_done(http, created.json()["id"])


def steps_run(http: httpx.Client, ticket_id: str) -> list[str]:
    timeline = http.get(f"/v1/tickets/{ticket_id}/timeline").json()
    return [p["step"] for p in timeline["phases"]]


def test_ticket_pipeline_proposes_a_solution_after_a_bounded_revision(operator: TenantClient) -> None:
    ticket = submit(operator.http, "ticket", {"text": "checkout is down"})
    assert ticket["status"] == "customer_action", ticket
    assert ticket["result"]["outcome"] == "solution_proposed"
    assert "TODO" not in ticket["result"]["output"]["proposal"]
    assert steps_run(operator.http, ticket["id"]) == ["work", "review", "work", "review"]


def test_ticket_pipeline_flags_human_action_and_escalates_when_review_never_passes(operator: TenantClient) -> None:
    human = submit(operator.http, "ticket", {"text": "We received a legal notice about our data retention"})
    assert human["status"] == "escalated" and human["result"]["outcome"] == "human_action_needed"
    stuck = submit(operator.http, "ticket", {"text": "my api_key= abc123 stopped working after the update"})
    assert stuck["status"] == "escalated" and stuck["result"]["outcome"] == "escalated", stuck
    assert steps_run(operator.http, stuck["id"]).count("review") == 3  # first pass + 2 bounded revisions


def test_small_build_skips_test_and_review(operator: TenantClient) -> None:
    ticket = submit(operator.http, "build", {"request": "add a login page"})
    assert ticket["status"] == "done", ticket
    assert ticket["result"]["outcome"] == "delivered"
    assert steps_run(operator.http, ticket["id"]) == ["intake", "plan", "deliver"]
    children = operator.http.get("/v1/tickets", params={"limit": 50}).json()["items"]
    assert sum(1 for c in children if c["parent_id"] == ticket["id"]) == 2  # the plan's 2 units, as child tickets


def test_large_build_runs_test_and_review_and_revises_open_work(operator: TenantClient) -> None:
    request = "draft the api schema, then write the handlers and add the migrations"
    ticket = submit(operator.http, "build", {"request": request})
    assert ticket["status"] == "done", ticket
    assert steps_run(operator.http, ticket["id"]) == ["intake", "plan", "test", "review", "test", "review",
                                                      "deliver"]
    delivered = ticket["result"]["output"]
    assert delivered["units"] == 3 and "TODO" not in delivered["summary"]


def test_big_plan_waits_at_the_approval_gate_then_runs_when_approved(operator: TenantClient) -> None:
    request = "design the schema; write the api; add auth; build the ui; write tests; deploy it"
    ticket = submit(operator.http, "build", {"request": request})
    assert ticket["status"] == "approval_required" and ticket["phase"] == "plan_gate", ticket
    approved = operator.http.post(f"/v1/tickets/{ticket['id']}/approve", json={"reason": "scope ok"})
    assert approved.status_code == 200, approved.text
    done = wait_done(operator.http, ticket["id"])
    assert done["status"] == "done", done
    events = operator.http.get(f"/v1/tickets/{ticket['id']}/timeline").json()["events"]
    approval = next(e for e in events if e["from_status"] == "approval_required")
    assert approval["to_status"] == "in_progress" and approval["reason"] == "scope ok"
    assert approval["actor"].startswith("key:")


def test_rejecting_at_the_gate_cancels_and_a_second_decision_is_refused(operator: TenantClient) -> None:
    request = "design the schema; write the api; add auth; build the ui; write tests; deploy it"
    ticket = submit(operator.http, "build", {"request": request})
    rejected = operator.http.post(f"/v1/tickets/{ticket['id']}/reject", json={"reason": "too big"})
    assert rejected.status_code == 200 and rejected.json()["status"] == "cancelled", rejected.text
    again = operator.http.post(f"/v1/tickets/{ticket['id']}/approve")
    assert again.status_code == 409
    assert "cancelled" in again.json()["message"]


def test_video_pipeline_produces_a_playable_mp4(operator: TenantClient, tmp_path: Any) -> None:
    ticket = submit(operator.http, "video", {"topic": "How oshal runs bots. Tickets flow to lanes.",
                                             "scenes": 3, "seconds_per_scene": 1.0})
    assert ticket["status"] == "approval_required" and ticket["phase"] == "script_gate", ticket
    assert operator.http.post(f"/v1/tickets/{ticket['id']}/approve").status_code == 200
    done = wait_done(operator.http, ticket["id"], timeout=60)
    assert done["status"] == "done", done
    output = done["result"]["output"]
    video = operator.http.get(f"/v1/tickets/{ticket['id']}/artifacts/video.mp4")
    assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"
    path = tmp_path / "video.mp4"
    path.write_bytes(video.content)
    frames, seconds = imageio_ffmpeg.count_frames_and_secs(str(path))
    assert frames == 36 and abs(seconds - 3.0) < 0.1  # 3 scenes x 1 s at 12 fps
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    reader.close()
    assert tuple(meta["size"]) == (320, 180) and output["width"] == 320
    names = {a["name"] for a in operator.http.get(f"/v1/tickets/{ticket['id']}/artifacts").json()}
    assert names == {"frame-001.png", "frame-002.png", "frame-003.png", "video.mp4"}


def test_typed_ticket_input_is_validated_against_the_type(operator: TenantClient) -> None:
    bad = operator.http.post("/v1/tickets", json={"type": "video", "input": {"scenes": 3}})
    assert bad.status_code == 422 and "topic" in bad.json()["message"]
    unknown = operator.http.post("/v1/tickets", json={"type": "nope", "input": {}})
    assert unknown.status_code == 404 and "workflow list" in unknown.json()["hint"]
    both = operator.http.post("/v1/tickets", json={"type": "video", "bot": "echo", "input": {}})
    assert both.status_code in (400, 422)

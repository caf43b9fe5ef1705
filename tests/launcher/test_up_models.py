"""`oshal up --provider ...` as a user runs it: the model-capable bots answer through a real provider's wire protocol
(a local fake OpenAI server), their cost lands in the ledger, the other bots stay deterministic, and the operations
loop's model-backed diagnoser has its uncited RCA sent back by the reviewer until every claim cites evidence."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import REPO, free_port
from external.fake_openai import FakeOpenAI
from launcher.test_up import _ready, _stop
from oshal_ops.incident_tickets import workflow_definition
from oshal_ops.service import rca_of_run

KEY_ENV = "OSHAL_TEST_FLEET_MODEL_KEY"
MODEL_KEY = "sk-test-fleet-model-0123456789"
BOTS = ("echo", "summarizer", "ops-diagnoser", "ops-reviewer")
SUMMARY = {"summary": "The queue stalled overnight.", "sentences": 3, "words": 11}
AT = "2025-06-01T03:00:00+00:00"
EVIDENCE = [
    {"id": "check:shop", "kind": "check", "source": "GET http://127.0.0.1:9/health", "collected_at": AT,
     "summary": "shop health check failed: HTTP 503",
     "data": {"name": "shop", "url": "http://127.0.0.1:9/health", "ok": False, "status": 503, "error": None,
              "at": AT}},
    {"id": "runbook:endpoint-down", "kind": "runbook", "source": "knowledge store", "collected_at": AT,
     "summary": "Runbook: an endpoint under watch is down", "data": {"slug": "endpoint-down", "tags": []}},
]


def claim(text: str, *citations: str) -> dict[str, Any]:
    return {"text": text, "citations": list(citations)}


def model_rca(cited: bool) -> dict[str, Any]:
    """What the scripted model diagnoses: the first draft's root cause cites nothing; the revision cites the check."""
    return {"failure_mode": "endpoint_down", "summary": "The shop's health endpoint answers 503.",
            "timeline": [claim("03:00 the shop check failed with HTTP 503", "check:shop")],
            "root_cause": claim("The shop service is down.", *(["check:shop"] if cited else [])),
            "impact": claim("Shop users get errors.", "check:shop"),
            "remediation": []}


def answer(body: dict[str, Any]) -> str:
    """The fake model answers each bot by the schema it asks for, and the diagnoser by whether it is revising."""
    asked = (body.get("response_format") or {}).get("json_schema", {}).get("name")
    if asked == "summarizer":
        return json.dumps(SUMMARY)
    if asked == "ops-diagnoser":
        task = json.loads(body["messages"][-1]["content"])
        return json.dumps({"rca": model_rca(cited=bool(task.get("feedback")))})
    return "not a bot this test switches"


@dataclass
class Up:
    url: str
    key: str
    model: FakeOpenAI

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {self.key}"}, timeout=60)


def _up(home: Path, fleet: Path, port: int, *options: str, env: dict[str, str] | None = None
        ) -> subprocess.Popen[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("OSHAL_")}
    environ.update({"OSHAL_HOME": str(home), "OSHAL_LOG_LEVEL": "warning", **(env or {})})
    return subprocess.Popen([sys.executable, "-m", "oshal.cli.main", "up", "--port", str(port), "--fleet", str(fleet),
                             *options], env=environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    root = tmp_path_factory.mktemp("up-models")
    fleet = root / "fleet"
    fleet.mkdir()
    for bot in BOTS:
        shutil.copy(REPO / "fleet" / f"{bot}.yaml", fleet / f"{bot}.yaml")
    home, port = root / "home", free_port()
    with FakeOpenAI(api_key=MODEL_KEY, reply=answer) as model:
        proc = _up(home, fleet, port, "--provider", "openai", "--model", "gpt-4o-mini", "--base-url",
                   model.base_url, "--api-key-env", KEY_ENV, env={KEY_ENV: MODEL_KEY})
        url = f"http://127.0.0.1:{port}"
        try:
            key = _ready(proc, url, home / "admin.key")
            yield Up(url, key, model)  # type: ignore[arg-type]
        finally:
            code, out = _stop(proc)
        assert code == 0
        assert "summarizer" in out and "openai" in out  # the banner shows the switched bot's harness


def test_a_model_capable_bot_answers_through_the_provider_in_its_shape_and_is_billed(up: Up) -> None:
    with up.client() as http:
        bots = {b["name"]: b for b in http.get("/v1/bots").json()}
        created = http.post("/v1/tickets", json={"bot": "summarizer", "input": {"text": "The queue stalled."}},
                            params={"wait": 30}).json()
        ledger = http.get("/v1/ledger", params={"ticket": created["id"]}).json()["items"]
    assert created["status"] == "done", created
    assert created["result"] == SUMMARY  # the deterministic summarizer's shape, from the model's JSON
    assert created["calls"] == 1 and created["cost_micros"] > 0
    [row] = ledger
    assert (row["bot"], row["provider"], row["model"], row["price_source"]) == (
        "summarizer", "openai", "gpt-4o-mini", "estimated")
    assert row["cost_micros"] == created["cost_micros"]
    [sent] = [r for r in up.model.completions if r.body["messages"][-1]["content"] == '{"text": "The queue stalled."}']
    assert sent.headers["authorization"] == f"Bearer {MODEL_KEY}"  # the key reached the node by its variable's name
    assert (bots["summarizer"]["harness"], bots["summarizer"]["model"]) == ("openai", "gpt-4o-mini")
    assert (bots["echo"]["harness"], bots["ops-reviewer"]["harness"]) == ("deterministic", "deterministic")


def test_a_bot_that_is_not_model_capable_stays_deterministic(up: Up) -> None:
    before = len(up.model.completions)
    with up.client() as http:
        created = http.post("/v1/tickets", json={"bot": "echo", "input": {"ping": 1}}, params={"wait": 30}).json()
    assert created["status"] == "done" and created["result"] == {"ping": 1}
    assert len(up.model.completions) == before  # no model was asked


def test_the_model_backed_diagnoser_is_sent_back_until_every_claim_cites_evidence(up: Up) -> None:
    with up.client() as http:
        published = http.post("/v1/workflows", json={"definition": workflow_definition()})
        assert published.status_code in (200, 201), published.text
        created = http.post("/v1/tickets", json={
            "type": "incident", "input": {"key": "check:shop", "signal": {"kind": "check_failed", "check": "shop"},
                                          "evidence": EVIDENCE, "auto": True}}).json()
        ticket = http.get(f"/v1/tickets/{created['id']}", params={"wait": 60}).json()
        timeline = http.get(f"/v1/tickets/{created['id']}/timeline").json()
    assert ticket["status"] == "done", ticket
    diagnoses = [r for r in up.model.completions
                 if (r.body.get("response_format") or {}).get("json_schema", {}).get("name") == "ops-diagnoser"]
    assert len(diagnoses) == 2  # the first draft was sent back once
    first, second = (json.loads(r.body["messages"][-1]["content"]) for r in diagnoses)
    assert first["evidence"] == EVIDENCE and not first["feedback"]  # the evidence is in the model's prompt
    assert second["feedback"] == ["root_cause: 'The shop service is down.' cites no evidence"]
    rca = rca_of_run(timeline)
    assert rca is not None and rca.root_cause.citations == ("check:shop",)
    assert rca.failure_mode == "endpoint_down"


@pytest.mark.parametrize(("options", "env", "says"), [
    (("--provider", "openai"), {}, "is set but no model"),
    (("--provider", "openai", "--model", "gpt-4o-mini", "--api-key-env", "OSHAL_TEST_UNSET_KEY"), {},
     "$OSHAL_TEST_UNSET_KEY"),
    (("--provider", "anthropic", "--model", "claude-3-5-haiku-latest"), {}, "$ANTHROPIC_API_KEY"),
    (("--model", "gpt-4o-mini"), {}, "without a model provider"),
    (("--provider", "gemini", "--model", "x"), {}, "is not a model provider"),
])
def test_up_refuses_a_misconfigured_provider_before_starting_anything(
        tmp_path: Path, options: tuple[str, ...], env: dict[str, str], says: str) -> None:
    home = tmp_path / "home"
    environ = {"OPENAI_API_KEY": "", "ANTHROPIC_API_KEY": "", **env}
    proc = _up(home, REPO / "fleet", free_port(), *options, env=environ)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert says in " ".join(err.split()), err
    assert not (home / "pg").exists()  # no engine was started

"""Alertmanager's webhook into incidents: the v4 payload as Alertmanager writes it (tests/ops/data, with its
source), grouping by group key, dedupe by fingerprint, resolution, and the intake's HTTP door (fail closed)."""

from __future__ import annotations

import asyncio
import copy
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from conftest import LoopThread, free_port
from oshal_ops.alerts import AlertmanagerPayload, PayloadError, label_fingerprint, parse_payload
from oshal_ops.incidents import IncidentBook, IncidentChange, incident_key
from oshal_ops.webhook import ALERTS_PATH, create_app

DATA = Path(__file__).parent / "data"
TOKEN = "a3f1c9e07b2d4c58a6e1f0b9d2c7e4a1"
RECEIVED = datetime(2020, 1, 1, 0, 5, tzinfo=UTC)


def captured(name: str = "firing") -> dict[str, Any]:
    document: dict[str, Any] = json.loads((DATA / f"alertmanager_v4_{name}.json").read_text())
    return document


def storm(size: int, *, status: str = "firing") -> dict[str, Any]:
    """One group of ``size`` alerts, one per instance, in the captured payload's shape."""
    payload = captured()
    payload["groupKey"] = '{}:{alertname="NodeDown"}'
    payload["groupLabels"] = {"alertname": "NodeDown"}
    payload["status"] = status
    payload["alerts"] = []
    for n in range(size):
        labels = {"alertname": "NodeDown", "instance": f"10.0.{n // 250}.{n % 250}:9100", "job": "node"}
        payload["alerts"].append({"status": status, "labels": labels, "annotations": {"summary": "node down"},
                                  "startsAt": "2020-01-01T00:00:00Z", "endsAt": "2020-01-01T01:00:00Z",
                                  "generatorURL": "http://prometheus:9090/graph",
                                  "fingerprint": label_fingerprint(labels)})
    payload["commonLabels"] = {"alertname": "NodeDown", "job": "node"}
    payload["commonAnnotations"] = {"summary": "node down"}
    return payload


def kinds(changes: list[IncidentChange]) -> list[str]:
    return [c.kind for c in changes]


# -- the payload -------------------------------------------------------------------------------------------------


def test_the_fingerprint_is_alertmanagers() -> None:
    # prometheus/common model/signature_test.go: labelSetToFingerprint's own test vector
    assert int(label_fingerprint({"name": "garland, briggs", "fear": "love is not enough"}), 16) == 5799056148416392346
    alert = captured()["alerts"][0]
    assert label_fingerprint(alert["labels"]) == alert["fingerprint"]


def test_the_captured_payload_reads_field_by_field() -> None:
    payload = parse_payload((DATA / "alertmanager_v4_firing.json").read_bytes())
    assert (payload.version, payload.group_key, payload.status, payload.receiver) == (
        "4", '{}:{alertname="test1"}', "firing", "test_receiver")
    assert (payload.truncated_alerts, payload.external_url, payload.notification_reason) == (
        0, "http://am", "first notification")
    assert payload.common_labels == {"alertname": "TestAlert"} and payload.group_labels == {}
    [alert] = payload.alerts
    assert alert.labels == {"alertname": "TestAlert"} and alert.annotations == {"summary": "Test summary"}
    assert alert.starts_at == datetime(2020, 1, 1, tzinfo=UTC) and alert.ended_at == datetime(2020, 1, 1, 1, tzinfo=UTC)
    assert (alert.generator_url, alert.fingerprint) == ("http://generator.url", "dab43189276e5f48")


def test_what_go_may_send_and_newer_fields_are_accepted() -> None:
    body = captured()
    body["alerts"][0].update(labels={"alertname": "X"}, annotations=None, endsAt="0001-01-01T00:00:00Z", fingerprint="")
    body["commonAnnotations"] = None
    body["someFieldFromANewerAlertmanager"] = {"x": 1}
    payload = parse_payload(json.dumps(body))
    [alert] = payload.alerts
    assert alert.annotations == {} and payload.common_annotations == {}
    assert alert.ended_at is None  # Go's zero time: not known
    assert alert.fingerprint == label_fingerprint({"alertname": "X"})  # computed as Alertmanager does


@pytest.mark.parametrize(("body", "said"), [
    (b'{"version": "4", ', "not valid JSON"),
    (b"[1, 2]", "must be a JSON object, not list"),
    (json.dumps({**captured(), "version": "3"}).encode(), "version: '3' is not supported"),
    (json.dumps({k: v for k, v in captured().items() if k != "groupKey"}).encode(), "groupKey: Field required"),
    (json.dumps({**captured(), "status": "pending"}).encode(), "status: Input should be 'firing' or 'resolved'"),
    (json.dumps({**captured(), "truncatedAlerts": -1}).encode(), "truncatedAlerts: Input should be greater than"),
    (json.dumps({**captured(), "alerts": [{**captured()["alerts"][0], "startsAt": "2020-01-01T00:00:00"}]}).encode(),
     "alerts[0].startsAt: Input should have timezone info"),
    (json.dumps({**captured(), "alerts": [{**captured()["alerts"][0], "labels": {"alertname": 7}}]}).encode(),
     "alerts[0].labels.alertname: Input should be a valid string"),
    (json.dumps({**captured(), "receiver": "a\u0000b"}).encode(), "'receiver' contains a NUL character"),
])
def test_a_bad_payload_says_what_is_wrong(body: bytes, said: str) -> None:
    with pytest.raises(PayloadError) as caught:
        parse_payload(body)
    assert said in str(caught.value), str(caught.value)


# -- incidents ---------------------------------------------------------------------------------------------------


def test_the_captured_payload_opens_one_incident() -> None:
    book = IncidentBook()
    changes = book.ingest(parse_payload(json.dumps(captured())), received_at=RECEIVED)
    key = incident_key(group_key='{}:{alertname="test1"}')
    assert kinds(changes) == ["incident_opened", "alert_added"]
    assert {c.incident_key for c in changes} == {key} and len(book) == 1
    incident = book.get(key)
    assert incident is not None and incident.status == "open" and incident.source == "alertmanager"
    assert incident.title == "TestAlert: Test summary" and incident.opened_at == RECEIVED
    assert incident.external_url == "http://am" and list(incident.alerts) == ["dab43189276e5f48"]
    record = incident.alerts["dab43189276e5f48"]
    assert (record.status, record.ends_at, record.first_seen) == ("firing", None, RECEIVED)


def test_a_storm_of_200_alerts_in_one_group_is_one_incident_of_200_alerts() -> None:
    book = IncidentBook()
    first = book.ingest(parse_payload(json.dumps(storm(50))), received_at=RECEIVED)
    # Alertmanager's next notification of the group carries every alert of it, old and new
    later = book.ingest(parse_payload(json.dumps(storm(200))), received_at=RECEIVED + timedelta(minutes=5))
    assert kinds(first) == ["incident_opened"] + ["alert_added"] * 50
    assert kinds(later) == ["alert_added"] * 150
    [incident] = list(book)
    assert len(incident.alerts) == 200 and len(incident.firing) == 200
    assert incident.title == "NodeDown: node down"
    assert incident.key == incident_key(group_key='{}:{alertname="NodeDown"}')


def test_the_same_payload_again_changes_nothing() -> None:
    book = IncidentBook()
    payload = parse_payload(json.dumps(storm(200)))
    book.ingest(payload, received_at=RECEIVED)
    [before] = list(book)
    assert book.ingest(payload, received_at=RECEIVED + timedelta(minutes=1)) == []
    assert book.ingest(parse_payload(json.dumps(storm(200))), received_at=RECEIVED + timedelta(minutes=2)) == []
    [after] = list(book)
    assert after == before


def test_a_resolved_payload_resolves_its_alerts_and_then_the_incident() -> None:
    book = IncidentBook()
    book.ingest(parse_payload(json.dumps(captured("firing"))), received_at=RECEIVED)
    resolved_at = RECEIVED + timedelta(hours=1)
    changes = book.ingest(parse_payload(json.dumps(captured("resolved"))), received_at=resolved_at)
    assert kinds(changes) == ["alert_resolved", "incident_resolved"]
    assert changes[0].alert is not None and changes[0].alert.ends_at == datetime(2020, 1, 1, 1, tzinfo=UTC)
    incident = book.get(changes[0].incident_key)
    assert incident is not None and incident.status == "resolved" and incident.resolved_at == resolved_at
    assert book.ingest(parse_payload(json.dumps(captured("resolved"))), received_at=resolved_at) == []


def test_an_incident_stays_open_until_every_alert_resolved() -> None:
    book = IncidentBook()
    book.ingest(parse_payload(json.dumps(storm(3))), received_at=RECEIVED)
    partly = storm(3)
    partly["alerts"][0]["status"] = "resolved"
    assert kinds(book.ingest(parse_payload(json.dumps(partly)), received_at=RECEIVED)) == ["alert_resolved"]
    [incident] = list(book)
    assert incident.status == "open" and len(incident.firing) == 2
    changes = book.ingest(parse_payload(json.dumps(storm(3, status="resolved"))), received_at=RECEIVED)
    assert kinds(changes) == ["alert_resolved", "alert_resolved", "incident_resolved"]


def test_late_news_from_an_ha_peer_is_ignored_and_a_new_firing_reopens() -> None:
    book = IncidentBook()
    firing, resolved = captured("firing"), captured("resolved")
    book.ingest(parse_payload(json.dumps(firing)), received_at=RECEIVED)
    book.ingest(parse_payload(json.dumps(resolved)), received_at=RECEIVED)
    # the other Alertmanager's copy of the first notification arrives last: the same firing, already resolved
    assert book.ingest(parse_payload(json.dumps(firing)), received_at=RECEIVED) == []
    again = copy.deepcopy(firing)
    again["alerts"][0].update(startsAt="2020-01-02T00:00:00Z", endsAt="2020-01-02T01:00:00Z")
    changes = book.ingest(parse_payload(json.dumps(again)), received_at=RECEIVED + timedelta(days=1))
    assert kinds(changes) == ["alert_refired", "incident_reopened"]
    # a resolution of the earlier firing, delivered late, does not resolve the new one
    assert book.ingest(parse_payload(json.dumps(resolved)), received_at=RECEIVED + timedelta(days=1)) == []
    [incident] = list(book)
    assert incident.status == "open" and incident.alerts["dab43189276e5f48"].starts_at.day == 2


def test_a_resolved_alert_never_seen_firing_is_recorded() -> None:
    book = IncidentBook()
    changes = book.ingest(parse_payload(json.dumps(captured("resolved"))), received_at=RECEIVED)
    assert kinds(changes) == ["incident_opened", "alert_added", "incident_resolved"]
    [incident] = list(book)
    assert incident.alerts["dab43189276e5f48"].ends_at == datetime(2020, 1, 1, 1, tzinfo=UTC)


def test_a_failing_check_is_an_incident_until_it_passes() -> None:
    book = IncidentBook()
    assert book.observe_check("shop-home", healthy=True, at=RECEIVED) == []
    opened = book.observe_check("shop-home", healthy=False, at=RECEIVED, summary="503 from /health")
    assert kinds(opened) == ["incident_opened", "alert_added"] and opened[0].incident_key == "check:shop-home"
    assert book.observe_check("shop-home", healthy=False, at=RECEIVED + timedelta(seconds=10)) == []
    recovered = book.observe_check("shop-home", healthy=True, at=RECEIVED + timedelta(seconds=20))
    assert kinds(recovered) == ["alert_resolved", "incident_resolved"]
    assert recovered[0].alert is not None and recovered[0].alert.ends_at == RECEIVED + timedelta(seconds=20)
    assert book.observe_check("shop-home", healthy=True, at=RECEIVED + timedelta(seconds=30)) == []
    again = book.observe_check("shop-home", healthy=False, at=RECEIVED + timedelta(seconds=40))
    assert kinds(again) == ["alert_refired", "incident_reopened"]
    incident = book.get("check:shop-home")
    assert incident is not None and incident.title == "check shop-home is failing: 503 from /health"


def test_incident_keys_are_derived_from_their_source_only() -> None:
    group = '{}/{severity="page"}:{alertname="NodeDown", cluster="' + "eu-west-1" * 40 + '"}'
    assert incident_key(group_key=group) == incident_key(group_key=group)
    assert incident_key(group_key=group) != incident_key(group_key=group + " ")
    assert incident_key(group_key=group).startswith("alertmanager:") and len(incident_key(group_key=group)) < 64
    assert incident_key(check="bot:echo") == "check:bot:echo"
    for wrong in ({}, {"group_key": "g", "check": "c"}, {"check": ""}, {"check": "x" * 121}, {"group_key": ""}):
        with pytest.raises(ValueError, match=r"exactly one|must"):
            incident_key(**wrong)


def test_forgetting_old_resolved_incidents_keeps_open_ones() -> None:
    book = IncidentBook()
    book.ingest(parse_payload(json.dumps(captured("resolved"))), received_at=RECEIVED)
    book.ingest(parse_payload(json.dumps(storm(2))), received_at=RECEIVED)
    assert book.forget_resolved(RECEIVED + timedelta(seconds=1)) == 1
    assert [i.title for i in book] == ["NodeDown: node down"]


# -- the intake over HTTP ----------------------------------------------------------------------------------------


@dataclass
class Intake:
    url: str
    book: IncidentBook = field(default_factory=IncidentBook)
    fail: bool = False

    async def on_alerts(self, payload: AlertmanagerPayload) -> list[IncidentChange]:
        if self.fail:
            raise RuntimeError("the platform is down")
        return self.book.ingest(payload)


def serve(token: str | None, **options: Any) -> Iterator[Intake]:
    """The intake app under uvicorn on a free loopback port, on its own event loop."""
    port = free_port()
    intake = Intake(f"http://127.0.0.1:{port}")
    thread = LoopThread("alert-intake")
    server = uvicorn.Server(uvicorn.Config(create_app(intake.on_alerts, token=token, **options), host="127.0.0.1",
                                           port=port, log_level="warning", access_log=False, lifespan="off"))
    served = asyncio.run_coroutine_threadsafe(server.serve(), thread.loop)
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and not served.done(), "the intake did not start"
        time.sleep(0.02)
    try:
        yield intake
    finally:
        server.should_exit = True
        served.result(30)
        thread.close()
        thread.loop.close()


@pytest.fixture(scope="module")
def guarded() -> Iterator[Intake]:
    yield from serve(TOKEN, max_body_bytes=64 * 1024)


@pytest.fixture(scope="module")
def unguarded() -> Iterator[Intake]:
    yield from serve(None)


@pytest.fixture
def intake(guarded: Intake) -> Intake:
    guarded.book, guarded.fail = IncidentBook(), False
    return guarded


def post(intake: Intake, body: Any, token: str | None = TOKEN, scheme: str = "Bearer") -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"{scheme} {token}".strip()  # "" sends the scheme alone
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(intake.url + ALERTS_PATH, content=content, headers=headers, timeout=30)


def test_with_no_token_configured_every_request_is_refused(unguarded: Intake) -> None:
    for token in (None, TOKEN, ""):
        response = post(unguarded, captured(), token=token)
        assert response.status_code == 503, response.text
        assert "token is not set" in response.json()["message"]
        assert "OSHAL_OPS_ALERT_TOKEN" in response.json()["hint"]
    assert len(unguarded.book) == 0
    health = httpx.get(unguarded.url + "/healthz", timeout=10)
    assert health.status_code == 200 and health.json()["alerts"].startswith("refusing")


@pytest.mark.parametrize(("token", "scheme"), [(None, "Bearer"), (TOKEN[:-1] + "0", "Bearer"), (TOKEN, "Basic"),
                                               (TOKEN + "0", "Bearer"), ("", "Bearer")])
def test_a_missing_or_wrong_token_is_401(intake: Intake, token: str | None, scheme: str) -> None:
    response = post(intake, captured(), token=token, scheme=scheme)
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert len(intake.book) == 0


def test_the_right_token_is_accepted_and_says_which_incidents_changed(intake: Intake) -> None:
    response = post(intake, captured())
    assert response.status_code == 200, response.text
    key = incident_key(group_key='{}:{alertname="test1"}')
    assert response.json() == {"received": 1, "truncated": 0,
                               "incidents": [{"key": key, "changes": {"incident_opened": 1, "alert_added": 1}}]}
    assert [i.key for i in intake.book] == [key]
    assert post(intake, captured()).json()["incidents"] == []  # the same notification again: nothing changed
    resolved = post(intake, captured("resolved")).json()["incidents"]
    assert resolved == [{"key": key, "changes": {"alert_resolved": 1, "incident_resolved": 1}}]
    assert httpx.get(intake.url + "/healthz", timeout=10).json() == {"status": "ok", "alerts": "accepting"}


def test_a_storm_over_http_is_one_incident(intake: Intake) -> None:
    response = post(intake, storm(200))
    assert response.status_code == 200, response.text
    [touched] = response.json()["incidents"]
    assert touched["changes"] == {"incident_opened": 1, "alert_added": 200}
    [incident] = list(intake.book)
    assert len(incident.alerts) == 200


@pytest.mark.parametrize(("body", "said"), [
    (b'{"version": "4", "alerts": [', "not valid JSON"),
    ({**captured(), "version": "3"}, "version: '3' is not supported"),
    ({**captured(), "alerts": [{"status": "firing"}]}, "alerts[0].labels: Field required"),
])
def test_a_bad_payload_is_422_with_the_reason(intake: Intake, body: Any, said: str) -> None:
    response = post(intake, body)
    assert response.status_code == 422, response.text
    assert said in response.json()["message"] and response.json()["error"] == "invalid"
    assert any(said in p for p in response.json()["problems"])
    assert len(intake.book) == 0


def test_a_body_over_the_cap_is_refused_unread(intake: Intake) -> None:
    response = post(intake, storm(400))  # ~100 KB against a 64 KB cap
    assert response.status_code == 413, response.text
    assert "larger than 65536 bytes" in response.json()["message"]
    assert len(intake.book) == 0


def test_a_chunked_body_over_the_cap_is_refused(intake: Intake) -> None:
    body = json.dumps(storm(400)).encode()

    def chunks() -> Iterator[bytes]:  # no Content-Length: the cap is counted while reading
        for start in range(0, len(body), 8192):
            yield body[start:start + 8192]

    response = httpx.post(intake.url + ALERTS_PATH, content=chunks(), timeout=30,
                          headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
    assert response.status_code == 413, response.text
    assert len(intake.book) == 0


def test_a_failure_to_record_is_500_so_alertmanager_retries(intake: Intake) -> None:
    intake.fail = True
    response = post(intake, captured())
    assert response.status_code == 500
    assert "could not be recorded" in response.json()["message"] and "platform is down" not in response.text


def test_a_short_token_is_refused_at_start() -> None:
    async def nothing(payload: AlertmanagerPayload) -> list[IncidentChange]:
        return []

    with pytest.raises(ValueError, match="at least 16"):
        create_app(nothing, token="hunter2")

"""The topology views as pure functions of the model: equal states render to equal bytes, one more bot changes each
view by that bot alone, and a declared bot that is not running shows as drift and as down."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from oshal.mesh.lanes import fleet_drift
from oshal.topology.model import BotState, ConnectorState, Control, Health, StoreState, Topology, WorkflowState
from oshal.topology.render import FORMATS
from oshal.topology.views import VIEWS, view


def _bot(name: str, replicas: int = 1, desired: int = 1, declared: bool = True) -> BotState:
    return BotState(name, "deterministic", f"deterministic-{name}", f"oshal:lane:{name}", replicas, desired, 0, 0,
                    declared)


def _model(*bots: BotState) -> Topology:
    return Topology(
        bots=bots or (_bot("echo"), _bot("summarizer", replicas=2, desired=2)),
        stores=(StoreState("postgres", "embedded postgres", Health.OK, "12 MB"),
                StoreState("redis", "embedded redis", Health.OK)),
        connectors=(ConnectorState("github", "enabled", True), ConnectorState("draft-api", "draft", False)),
        controls=(Control("row-level security", "enforced", Health.OK, "24 tables, forced"),
                  Control("code scan", "watched", Health.DEGRADED, "2 high")),
        workflows=(WorkflowState("build", 1, ("plan", "code", "test"), (("done", 3),)),),
        ticket_counts=(("done", 7), ("in_progress", 1)),
    )


@pytest.mark.parametrize("name", sorted(VIEWS))
@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_equal_states_render_to_equal_bytes_whatever_their_order(name: str, fmt: str) -> None:
    model = _model()
    shuffled = replace(model, bots=model.bots[::-1], stores=model.stores[::-1], connectors=model.connectors[::-1],
                       controls=model.controls[::-1], ticket_counts=model.ticket_counts[::-1])
    first, second = FORMATS[fmt](view(name, model)), FORMATS[fmt](view(name, shuffled))
    assert first == second and first.strip()


@pytest.mark.parametrize("name", ["system", "deployment", "integration"])
def test_one_more_bot_changes_a_view_by_that_bot_and_its_edges_alone(name: str) -> None:
    before = view(name, _model(_bot("echo")))
    after = view(name, _model(_bot("echo"), _bot("scorer")))
    added_nodes = set(after.nodes) - set(before.nodes)
    added_edges = set(after.edges) - set(before.edges)
    assert set(before.nodes) <= set(after.nodes) and set(before.edges) <= set(after.edges)
    assert [n.id for n in added_nodes] == ["bot_scorer"]
    assert added_edges and all("bot_scorer" in (e.source, e.target) for e in added_edges)


def test_views_without_bots_do_not_change_when_a_bot_is_added() -> None:
    for name in ("routing", "workflows", "security", "business"):
        assert view(name, _model(_bot("echo"))) == view(name, _model(_bot("echo"), _bot("scorer")))


def test_a_declared_bot_that_is_not_running_is_drift_and_down() -> None:
    found = tuple(d.text for d in fleet_drift({"echo": 1, "scorer": 2}, {"echo": 1, "stray": 1}, consumed={"echo"}))
    assert found == ("bot scorer is declared with 2 replica(s) but none is running",
                     "bot stray runs but is not declared in the fleet",
                     "lane of bot scorer has no consumer group")
    down = _bot("scorer", replicas=0, desired=2)
    deployment = view("deployment", replace(_model(_bot("echo"), down), drift=found))
    assert {n.id: n.health for n in deployment.nodes}["bot_scorer"] is Health.DOWN
    assert deployment.notes == tuple(sorted(found))
    assert "classDef down" in FORMATS["mermaid"](deployment) and ":::down" in FORMATS["mermaid"](deployment)


def test_health_of_a_bot() -> None:
    assert _bot("a").health is Health.OK
    assert _bot("a", replicas=1, desired=2).health is Health.DEGRADED
    assert _bot("a", replicas=1, desired=0, declared=False).health is Health.DEGRADED
    assert replace(_bot("a"), held_by="global: incident").health is Health.DEGRADED


def test_the_system_view_names_the_eight_layers_and_the_json_round_trips() -> None:
    diagram = view("system", _model())
    layers = [n.id for n in diagram.nodes if n.group == "layers"]
    assert layers == ["edge", "surfaces", "auth", "control", "mesh", "execution", "integration", "data"]
    parsed = json.loads(FORMATS["json"](diagram))
    assert parsed["view"] == "system" and {n["id"] for n in parsed["nodes"]} >= {"bot_echo", "bot_summarizer"}


def test_labels_cannot_break_out_of_a_rendering() -> None:
    hostile = replace(_bot("echo"), harness='x"]; evil --> y; %% "')
    for fmt in ("mermaid", "dot"):
        text = FORMATS[fmt](view("system", _model(hostile)))
        node_lines = [line for line in text.splitlines() if line.strip().startswith(("bot_echo[", "bot_echo [label"))]
        assert len(node_lines) == 1 and 'x"]' not in node_lines[0].replace('\\"', "")


def test_the_business_view_says_no_application_is_installed_yet() -> None:
    diagram = view("business", _model())
    assert diagram.nodes == () and "no application is installed yet" in diagram.notes[0]


def test_the_business_view_draws_each_applications_flows_with_their_counts() -> None:
    incident = WorkflowState("incident", 2, ("investigate", "review", "remediation_gate"),
                             (("approval_required", 1), ("done", 3)), application="operations loop")
    platform_own = WorkflowState("video", 1, ("script", "render"))
    model = replace(_model(), workflows=(incident, platform_own), applications=("operations loop",))
    diagram = view("business", model)
    labels = {n.id: n.label for n in diagram.nodes}
    assert labels["app_operations_loop"] == "operations loop"
    assert labels["app_operations_loop_incident"] == "incident v2: approval_required 1, done 3"
    assert not any("video" in n.id for n in diagram.nodes)  # the platform's own flows are the workflows view's
    chain = [(e.source, e.target) for e in diagram.edges]
    assert ("app_operations_loop_incident_investigate", "app_operations_loop_incident_review") in chain
    assert "flowchart" in FORMATS["mermaid"](diagram)


def test_the_routing_view_labels_each_measured_hop() -> None:
    timed = replace(_model(), route=(("bot_run", 2.0, 9.5), ("lane_to_bot", 0.25, 1.0)))
    labels = {(e.source, e.target): e.label for e in view("routing", timed).edges}
    assert labels[("bot", "result")] == "p50 2.0 ms, p99 9.5 ms" and labels[("lane", "bot")] == "p50 0.2 ms, p99 1.0 ms"
    assert labels[("request", "ticket")] == "" and view("routing", timed).notes == ()
    one = view("routing", replace(timed, route_ticket="t-1"))
    assert "t-1" in one.title and {e.label for e in one.edges} == {"", "2.0 ms", "0.2 ms"}
    assert view("routing", _model()).notes == ("no finished plain ticket yet: the hops carry no timings",)

"""Every view of the platform as a diagram (nodes in groups, edges between them), computed from one
:class:`~oshal.topology.model.Topology`. A view adds nothing the model does not hold: a bot added to the model adds
its node and edges to each view that shows bots, and nothing else changes."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

from oshal.topology.model import BotState, Health, Topology
from oshal.transitions import transition_pairs


@dataclass(frozen=True, slots=True)
class Node:
    id: str
    label: str
    group: str = ""
    health: Health = Health.OK


@dataclass(frozen=True, slots=True)
class Edge:
    source: str
    target: str
    label: str = ""


@dataclass(frozen=True, slots=True)
class Diagram:
    view: str
    title: str
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]
    notes: tuple[str, ...] = ()


# The eight layers of the platform, top down, as the README's "How it works" names them.
LAYERS = (
    ("edge", "edge: ingress, webhooks"),
    ("surfaces", "surfaces: API, CLI, console"),
    ("auth", "auth gate: tenant, role, bot identity"),
    ("control", "control plane: tickets, workflows, dispatcher, collector, sweeper, scheduler"),
    ("mesh", "mesh: lanes, output streams, heartbeats"),
    ("execution", "execution: bot nodes and harnesses"),
    ("integration", "integration: broker, connector runtime, secrets"),
    ("data", "data: Postgres, Redis, object store"),
)


def _bot_id(bot: BotState) -> str:
    return f"bot_{bot.name}"


def _bot_label(bot: BotState) -> str:
    held = f", held: {bot.held_by}" if bot.held_by else ""
    return (f"{bot.name} ({bot.harness}) {bot.replicas}/{bot.replicas_desired} up, "
            f"{bot.pending} pending, lag {bot.lag}{held}")


def system(model: Topology) -> Diagram:
    nodes = [Node(layer, label, "layers") for layer, label in LAYERS]
    edges = [Edge(upper, lower, "work") for (upper, _), (lower, _) in itertools.pairwise(LAYERS)]
    edges += [Edge("execution", "mesh", "results"), Edge("mesh", "control", "collected"),
              Edge("control", "surfaces", "answers and events")]
    for bot in model.bots:
        # the name and harness only: the deployment view carries each bot's replicas, pending and lag
        nodes.append(Node(_bot_id(bot), f"{bot.name} ({bot.harness})", "execution", bot.health))
        edges.append(Edge("execution", _bot_id(bot)))  # each bot is part of the execution layer; lanes are mesh's
    return Diagram("system", "How work flows through the layers", tuple(nodes), tuple(edges))


def deployment(model: Topology) -> Diagram:
    nodes = [Node("control_plane", "control plane: API, collector, sweeper, scheduler", "processes"),
             Node("node_host", "node host", "processes",
                  Health.DOWN if model.bots and not any(b.replicas for b in model.bots) else Health.OK)]
    edges = [Edge("control_plane", "node_host", "dispatches through the lanes")]
    for store in model.stores:
        store_id = f"store_{store.name.replace(' ', '_')}"
        nodes.append(Node(store_id, f"{store.name}: {store.kind}" + (f" ({store.detail})" if store.detail else ""),
                          "stores", store.health))
        edges.append(Edge("control_plane", store_id))
    for bot in model.bots:
        nodes.append(Node(_bot_id(bot), _bot_label(bot), "node host", bot.health))
        edges.append(Edge("node_host", _bot_id(bot), "runs"))
    return Diagram("deployment", "Processes, stores and where each bot runs", tuple(nodes), tuple(edges),
                   model.drift)


ROUTE = (("request", "HTTP request and auth gate"), ("ticket", "ticket and phase committed"),
         ("lane", "on the bot's lane"), ("bot", "bot runs it"), ("result", "result on the output stream"),
         ("collector", "collector committed: attempt, ticket, ledger row"), ("answer", "waiter answered"))
# Which measured span (see store.tickets.SPANS) each hop is.
_SPAN_OF = {("ticket", "lane"): "committed_to_lane", ("lane", "bot"): "lane_to_bot", ("bot", "result"): "bot_run",
            ("result", "collector"): "result_to_commit"}


def routing(model: Topology) -> Diagram:
    timings = {span: (p50, p99) for span, p50, p99 in model.route}

    def label(hop: tuple[str, str]) -> str:
        span = _SPAN_OF.get(hop)
        if span is None or span not in timings:
            return ""
        p50, p99 = timings[span]
        return f"{p50:.1f} ms" if model.route_ticket else f"p50 {p50:.1f} ms, p99 {p99:.1f} ms"

    nodes = tuple(Node(hop, text, "route") for hop, text in ROUTE)
    edges = tuple(Edge(a, b, label((a, b))) for (a, _), (b, _) in itertools.pairwise(ROUTE))
    notes: tuple[str, ...] = ()
    if model.route_ticket:
        title = f"How ticket {model.route_ticket} travelled"
    else:
        title = "How one request travels"
        if not model.route:
            notes = ("no finished plain ticket yet: the hops carry no timings",)
    return Diagram("routing", title, nodes, edges, notes)


def integration(model: Topology) -> Diagram:
    nodes = [Node("gateway", "tool gateway: bot identity, signed envelope, policy", "gate"),
             Node("broker", "broker: grants, approvals, kill switches", "gate"),
             Node("runtime", "connector runtime: credentials stay here", "gate")]
    edges = [Edge("gateway", "broker"), Edge("broker", "runtime")]
    for bot in model.bots:
        nodes.append(Node(_bot_id(bot), bot.name, "bots", bot.health))
        edges.append(Edge(_bot_id(bot), "gateway", "tool calls"))
    for connector in model.connectors:
        connector_id = f"connector_{connector.id}"
        health = Health.OK if connector.state == "enabled" and connector.signed else Health.DEGRADED
        nodes.append(Node(connector_id, f"{connector.id}: {connector.state}, "
                          f"{'signed' if connector.signed else 'unsigned'}", "connectors", health))
        edges.append(Edge("runtime", connector_id, "calls"))
    return Diagram("integration", "Bots to external systems, through the gate", tuple(nodes), tuple(edges))


def workflows(model: Topology) -> Diagram:
    counts = dict(model.ticket_counts)
    pairs = sorted(transition_pairs())
    states = sorted({state for pair in pairs for state in pair})
    nodes = [Node(f"state_{s}", f"{s} ({counts.get(s, 0)})", "ticket lifecycle") for s in states]
    edges = [Edge(f"state_{a}", f"state_{b}") for a, b in pairs]
    for flow in model.workflows:
        steps = [f"wf_{flow.name}_{step}" for step in flow.steps]
        per_status = ", ".join(f"{status} {n}" for status, n in flow.counts) or "no tickets"
        nodes.append(Node(f"wf_{flow.name}", f"{flow.name} v{flow.version}: {per_status}", f"workflow {flow.name}"))
        nodes += [Node(node_id, step, f"workflow {flow.name}") for node_id, step in zip(steps, flow.steps,
                                                                                          strict=True)]
        edges += [Edge(a, b) for a, b in zip([f"wf_{flow.name}", *steps], steps, strict=False)]
    return Diagram("workflows", "The ticket lifecycle and each workflow", tuple(nodes), tuple(edges))


def security(model: Topology) -> Diagram:
    nodes = [Node("enforced", "enforced", "security"), Node("watched", "watched", "security")]
    edges = []
    for control in model.controls:
        control_id = f"control_{control.kind}_{control.name.replace(' ', '_')}"
        nodes.append(Node(control_id, control.name + (f": {control.detail}" if control.detail else ""),
                          control.kind, control.health))
        edges.append(Edge(control.kind, control_id))
    return Diagram("security", "What is enforced and what is watched", tuple(nodes), tuple(edges))


def business(model: Topology) -> Diagram:
    if not model.applications:
        return Diagram("business", "Application flows", (), (),
                       ("no application is installed yet: the trading desk and the operations loop add their flows "
                        "here when they land",))
    nodes: list[Node] = []
    edges: list[Edge] = []
    for app in model.applications:
        app_id = "app_" + "".join(c if c.isalnum() else "_" for c in app)
        nodes.append(Node(app_id, app, app))
        for flow in (f for f in model.workflows if f.application == app):
            per_status = ", ".join(f"{status} {n}" for status, n in flow.counts) or "no tickets"
            head = f"{app_id}_{flow.name}"
            steps = [f"{head}_{step}" for step in flow.steps]
            nodes.append(Node(head, f"{flow.name} v{flow.version}: {per_status}", app))
            nodes += [Node(node_id, step, app) for node_id, step in zip(steps, flow.steps, strict=True)]
            edges += [Edge(app_id, head)] + [Edge(a, b) for a, b in zip([head, *steps], steps, strict=False)]
    return Diagram("business", "Application flows", tuple(nodes), tuple(edges))


VIEWS: dict[str, Callable[[Topology], Diagram]] = {
    "system": system, "deployment": deployment, "routing": routing, "integration": integration,
    "workflows": workflows, "security": security, "business": business,
}


def view(name: str, model: Topology) -> Diagram:
    return VIEWS[name](model.sorted())

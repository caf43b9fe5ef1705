"""Prometheus metrics owned by the control plane."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

TICKETS_CREATED = Counter("oshal_tickets_created_total", "Tickets accepted and committed.")
RESULTS_COMMITTED = Counter("oshal_results_committed_total", "Bot results committed by the collector.")
RESULTS_REJECTED = Counter("oshal_results_rejected_total", "Results dropped (undecodable or bad signature).")
COLLECTOR_BATCH = Histogram("oshal_collector_batch_seconds", "Collector commit time per batch.",
                            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0))
PHASES_REDRIVEN = Counter("oshal_phases_redriven_total",
                          "Phases re-sent by the sweeper (no copy in their lane, no result in their output stream).")
STALE_IN_FLIGHT = Gauge("oshal_stale_phases_in_flight",
                        "Phases without progress for OSHAL_STALE_AFTER_S whose envelope still waits in its lane "
                        "(or whose result waits for the collector): left alone, not re-sent.")
DUPLICATE_EXECUTIONS = Counter("oshal_duplicate_executions_total",
                               "Successful executions of a phase that had already succeeded (they ran and are "
                               "billed; each ticket shows its duplicates).")
DONE_MARKERS_SET = Counter("oshal_done_markers_set_total",
                           "Done markers set for phases sent more than once (workers skip their other copies).")
LANE_LENGTH = Gauge("oshal_lane_length", "Entries in a bot's lane (undelivered + pending).", ["bot"])
LANE_PENDING = Gauge("oshal_lane_pending", "Entries delivered to a bot but not yet acknowledged.", ["bot"])
BOT_REPLICAS = Gauge("oshal_bot_replicas", "Live replicas of a bot (by heartbeat).", ["bot"])
WORKFLOW_ADVANCE = Histogram(
    "oshal_workflow_advance_seconds",
    "Engine time per workflow step: one advance transaction (lock, checkpoint, next phases) and its dispatch.",
    buckets=(0.0005, 0.001, 0.0015, 0.002, 0.0025, 0.003, 0.004, 0.005, 0.0075, 0.01, 0.02, 0.05, 0.1, 0.5))

"""A budget reservation must outlive its call: OSHAL_RESERVATION_TTL_S checked against every bot's longest call.

A reservation released while its call still runs gives its room to other calls, and the late result then takes
the budget past its limit. Each call a job makes extends its earlier reservations (see oshal_reserve), so the TTL
only has to cover one call, retries included, plus the trip of its result to the collector.
"""

from __future__ import annotations

from collections.abc import Iterable

from oshal.bots.manifest import BotManifest
from oshal.errors import ConfigError

RESULT_MARGIN_S = 10.0  # the job's result reaching the collector after its last call


def required_ttl_s(manifest: BotManifest) -> float:
    """The shortest TTL under which no reservation of this bot is released while its call may still run."""
    longest = manifest.longest_model_call_s
    return longest + RESULT_MARGIN_S if longest else 0.0


def check_reservation_ttl(ttl_s: float, manifests: Iterable[BotManifest]) -> None:
    """Refuse to start when a bot's model call may outlive its reservation; the error names each such bot."""
    short = sorted((m for m in manifests if required_ttl_s(m) > ttl_s), key=lambda m: -required_ttl_s(m))
    if not short:
        return
    needed = required_ttl_s(short[0])
    bots = "; ".join(f"bot {m.name!r} needs {required_ttl_s(m):g} s (timeout_s {m.timeout_s:g} x "
                     f"{m.max_retries + 1} attempts + up to {m.max_retries} retry waits + "
                     f"{RESULT_MARGIN_S:g} s for the result)" for m in short)
    raise ConfigError(
        f"OSHAL_RESERVATION_TTL_S={ttl_s:g} is shorter than a model call may run, so a budget reservation could "
        f"be released while its call still runs and the budget overrun: {bots}",
        hint=f"set OSHAL_RESERVATION_TTL_S={needed:g} (or more), or lower those bots' timeout_s / max_retries")


def registered_manifests(rows: Iterable[dict[str, object]]) -> list[BotManifest]:
    """The manifests of registered bots (rows of the ``bots`` table); one that no longer validates is skipped, as
    its node host refuses it too."""
    manifests = []
    for row in rows:
        data = row.get("manifest")
        if not isinstance(data, dict):
            continue
        try:
            manifests.append(BotManifest.model_validate({k: v for k, v in data.items()
                                                        if k in BotManifest.model_fields}))
        except ValueError:
            continue
    return manifests

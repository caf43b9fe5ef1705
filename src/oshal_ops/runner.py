"""``oshal ops run``: the service, its alert intake (when configured) and its heal executor, until Ctrl-C."""

from __future__ import annotations

import asyncio
import contextlib
import signal

import uvicorn
from rich.console import Console
from rich.markup import escape

from oshal_ops.api import PlatformAPI
from oshal_ops.config import ConfigError, OpsConfig
from oshal_ops.heal import executor_for
from oshal_ops.service import Incident, OpsService
from oshal_ops.webhook import create_app


async def run_once(config: OpsConfig, out: Console) -> None:
    """One round: take up what a previous run left, run every check, move each incident on, and stop."""
    async with PlatformAPI(config.platform_url(), config.platform_key()) as api:
        service = OpsService(api, config, executor_for(api, config))
        await service.start()
        results = await service.tick()
        failing = [r for r in results if not r.ok]
        out.print(f"{len(results)} checks, {len(failing)} failing; open incidents: "
                  + (", ".join(f"{escape(i.key)} ({i.state})" for i in service.incidents.values()) or "none"))


async def run_loop(config: OpsConfig, out: Console) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with PlatformAPI(config.platform_url(), config.platform_key()) as api:
        service = OpsService(api, config, executor_for(api, config))

        async def show(incident: Incident) -> None:
            out.print(f"[bold]{incident.state}[/] {escape(incident.key)}  ticket {incident.ticket}")

        service.on_change = show
        tasks = [asyncio.create_task(service.run(stop), name="ops-loop")]
        server: uvicorn.Server | None = None
        if config.alerts is not None:
            host, _, port = config.alerts.listen.rpartition(":")
            try:
                intake = create_app(service.on_alerts, token=config.alert_token(),
                                    token_setting=config.alerts.token_env)
            except ValueError as e:
                raise ConfigError(str(e)) from e
            server = uvicorn.Server(uvicorn.Config(intake, host=host.strip("[]"), port=int(port), log_level="warning",
                                                   access_log=False))
            tasks.append(asyncio.create_task(server.serve(), name="ops-alert-intake"))
            if config.alert_token() is None:
                out.print(f"[yellow]the alert intake refuses every request: {config.alerts.token_env} is not set[/]")
        out.print(f"oshal ops: watching {len(config.endpoints)} endpoint(s) and the platform at "
                  f"{config.platform_url()} every {config.interval_s:g} s"
                  + (f"; alerts at http://{config.alerts.listen}/v1/ops/alerts" if config.alerts else ""))
        await stop.wait()
        if server is not None:
            server.should_exit = True
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(task, 15)

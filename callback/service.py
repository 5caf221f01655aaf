"""The call controller's process: links to Kamailio and rtpengine, kept alive and watched.

The call flows (regular callback, web callback) run on top of these two links.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal

from boomerang.settings import READY_FD_ENV, Settings, load
from callback.evapi import KamailioChannel
from callback.ng import NgClient

log = logging.getLogger("callback")

HEARTBEAT_INTERVAL = 5.0


class Controller:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.kamailio = KamailioChannel(settings.controller_evapi_listen)
        self.rtpengine = NgClient(settings.rtpengine_ng_tcp_listen)

    async def run(self) -> None:
        """Run until cancelled."""
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self.kamailio.run())
            tasks.create_task(self.rtpengine.run())
            await self._wait_connected()
            _report_ready()
            tasks.create_task(self._heartbeat())

    async def _wait_connected(self) -> None:
        await self.kamailio.connected.wait()
        await self.rtpengine.connected.wait()
        await self.rtpengine.request("ping")
        await self.kamailio.ping()
        log.info("call controller ready")

    async def _heartbeat(self) -> None:
        """Check that both engines still answer, and say so in the log when one does not."""
        while True:
            await asyncio.sleep(HEARTBEAT_INTERVAL)
            for name, probe in (
                ("kamailio", self.kamailio.ping),
                ("rtpengine", lambda: self.rtpengine.request("ping")),
            ):
                try:
                    await probe()
                except (TimeoutError, ConnectionError) as exc:
                    log.warning("%s did not answer the heartbeat: %r", name, exc)


def _report_ready() -> None:
    """Tell `boomerang run` (if it started us) that we are up."""
    fd = os.environ.get(READY_FD_ENV)
    if fd:
        with contextlib.suppress(OSError):
            os.write(int(fd), b"ready\n")
            os.close(int(fd))


def main() -> int:
    settings = load()
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    async def serve() -> None:
        running = asyncio.current_task()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, running.cancel)
        try:
            await Controller(settings).run()
        except asyncio.CancelledError:
            log.info("call controller stopped")

    asyncio.run(serve())
    return 0

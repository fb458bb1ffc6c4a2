"""The Airboss's threads: database work on one pool, libvirt work on another, bounded per
container, so nothing blocks the event loop and a slow container holds up only its own VMs."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable
from typing import TypeVar

from flightdeck.airboss.config import Settings
from flightdeck.airboss.gate import Refusal

T = TypeVar("T")


class Workers:
    """`in_db(fn)` and `in_libvirt(container, fn)`: `fn` in a worker thread, awaited."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.db_pool = concurrent.futures.ThreadPoolExecutor(
            settings.workers, thread_name_prefix="airboss-db"
        )
        self.virt_pool = concurrent.futures.ThreadPoolExecutor(
            settings.libvirt_workers, thread_name_prefix="airboss-virt"
        )
        self._per_container: dict[str, asyncio.Semaphore] = {}

    async def in_db(self, fn: Callable[[], T]) -> T:
        """Run `fn` (database or crypto work) on the database pool."""
        return await asyncio.get_running_loop().run_in_executor(self.db_pool, fn)

    async def in_libvirt(self, container: str | None, fn: Callable[[], T]) -> T:
        """Run a libvirt-bound call, at most `per_container` at once on one container, and
        at most `action_timeout` seconds (then 504 `timeout`; the call still ends in its
        thread, and only then gives its container's slot back).

        `container=None` is for calls that span containers (a cluster's states, which
        `statuses` fetches one connection per container itself): only the pool bounds them.
        """
        loop = asyncio.get_running_loop()
        sem: asyncio.Semaphore | None = None
        if container is not None:
            sem = self._per_container.setdefault(
                container, asyncio.Semaphore(self.settings.per_container)
            )
            await sem.acquire()
        try:
            fut = loop.run_in_executor(self.virt_pool, fn)
        except BaseException:
            if sem is not None:
                sem.release()
            raise
        if sem is not None:
            fut.add_done_callback(lambda _f: sem.release())
        try:
            return await asyncio.wait_for(asyncio.shield(fut), self.settings.action_timeout)
        except TimeoutError:
            raise Refusal(
                "timeout",
                f"container {container} did not finish within {self.settings.action_timeout:g} s",
            ) from None

    def shutdown(self) -> None:
        self.db_pool.shutdown(wait=True, cancel_futures=True)
        self.virt_pool.shutdown(wait=False, cancel_futures=True)

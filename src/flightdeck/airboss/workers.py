"""The Airboss's threads: database work on one pool, libvirt work on another, bounded per
container, so nothing blocks the event loop and a slow container holds up only its own VMs.

The libvirt pool's threads are daemons (`DaemonPool`): a call stuck on a container that
stopped answering must not keep a stopping Airboss alive (Python joins the threads of a
`ThreadPoolExecutor` at exit, whatever they are doing).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import queue
import threading
from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

from flightdeck.airboss.config import Settings
from flightdeck.airboss.gate import Refusal

T = TypeVar("T")


class DaemonPool(concurrent.futures.Executor):
    """A fixed pool of `size` daemon threads, started with the first task; `shutdown` lets
    idle threads end and waits (if asked) for the others at most `grace` seconds."""

    def __init__(self, size: int, name: str, grace: float = 30.0) -> None:
        self.size = size
        self.name = name
        self.grace = grace
        self._tasks: queue.SimpleQueue[
            tuple[concurrent.futures.Future[Any], Callable[[], Any]] | None
        ] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._closed = False

    def submit(
        self, fn: Callable[..., T], /, *args: Any, **kwargs: Any
    ) -> concurrent.futures.Future[T]:
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        with self._lock:
            if self._closed:
                raise RuntimeError(f"{self.name}: shut down")
            if not self._threads:
                for i in range(self.size):
                    t = threading.Thread(target=self._run, name=f"{self.name}-{i}", daemon=True)
                    t.start()
                    self._threads.append(t)
            self._tasks.put((future, partial(fn, *args, **kwargs)))
        return future

    def _run(self) -> None:
        while (task := self._tasks.get()) is not None:
            future, fn = task
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn())
            except BaseException as exc:
                future.set_exception(exc)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            self._closed = True
            threads = list(self._threads)
        if cancel_futures:
            while True:
                try:
                    task = self._tasks.get_nowait()
                except queue.Empty:
                    break
                if task is not None:
                    task[0].cancel()
        for _ in threads:
            self._tasks.put(None)
        if wait:
            for t in threads:
                t.join(self.grace)


class Workers:
    """`in_db(fn)` and `in_libvirt(container, fn)`: `fn` in a worker thread, awaited."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.db_pool = concurrent.futures.ThreadPoolExecutor(
            settings.workers, thread_name_prefix="airboss-db"
        )
        self.virt_pool = DaemonPool(settings.libvirt_workers, "airboss-virt")
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

"""A private event loop in its own thread, so sync callers work even inside a caller's running loop."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

logger = logging.getLogger(__name__)

_T = TypeVar("_T")


class LoopThread:
    """Runs coroutines on one event loop owned by a daemon thread.

    Sync and async callers both hand it coroutines, so a sync call also works while an event loop runs in
    the caller's thread, and everything on this loop can share one `httpx.AsyncClient`.
    """

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()
        self._closed = False
        self._close_lock = threading.Lock()

    def submit(self, coro: Coroutine[Any, Any, _T]) -> concurrent.futures.Future[_T]:
        """Schedules `coro` on the loop.

        Raises:
            RuntimeError: If the loop has been stopped.
        """
        if self._closed:
            coro.close()
            raise RuntimeError("this Embedder is closed; create a new one")
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def call(self, coro: Coroutine[Any, Any, _T]) -> _T:
        """Runs `coro` on the loop and waits for it; an interrupt while waiting cancels it.

        Raises:
            RuntimeError: If called from the loop's own thread (it would wait for itself), or after `stop`.
        """
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("a sync embed call cannot run on the backend's own event-loop thread")
        future = self.submit(coro)
        try:
            return future.result()
        except BaseException:
            future.cancel()  # e.g. KeyboardInterrupt: stop the requests instead of leaving them running
            raise

    def stop(self, cleanup: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Cancels every task on the loop, runs `cleanup()` there, and ends the thread; idempotent."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        if threading.current_thread() is self._thread:
            self.loop.create_task(self._cancel_all(cleanup)).add_done_callback(lambda _: self.loop.stop())
            return
        try:
            asyncio.run_coroutine_threadsafe(self._cancel_all(cleanup), self.loop).result(timeout=10)
        except Exception:  # stopping must not fail; the connections die with the thread
            logger.debug("closing the HTTP client raised", exc_info=True)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        if not self._thread.is_alive():
            self.loop.close()

    @staticmethod
    async def _cancel_all(cleanup: Callable[[], Coroutine[Any, Any, None]]) -> None:
        current = asyncio.current_task()
        pending = [task for task in asyncio.all_tasks() if task is not current]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        await cleanup()

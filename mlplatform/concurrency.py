"""Generic thread helpers (no Django here): work handed to background threads, a generator run
ahead of its consumer, a call made on a thread of its own.

Threads that touch the database must close their own connection when they end: pass
`on_exit=django.db.connection.close` (each thread has its own connection in Django).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Background(Generic[T]):
    """Runs `work(item)` for each item put, on `threads` threads fed through a bounded queue.

    `put` blocks while `threads` items are in progress and one more is waiting, so memory stays
    bounded, and re-raises the first failure of a thread; `close` waits for every item and
    re-raises; `abort` drops what is still queued. With one thread, items are handled in order.
    `synchronous=True` runs each item in the caller's thread instead (e.g. SQLite, which allows
    one writer at a time).
    """

    _DONE = object()

    def __init__(
        self,
        name: str,
        work: Callable[[T], Any],
        *,
        threads: int = 1,
        synchronous: bool = False,
        on_exit: Callable[[], Any] | None = None,
    ):
        self._work = work
        self._on_exit = on_exit
        self._synchronous = synchronous
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=1)
        self._error: Exception | None = None
        self._aborted = threading.Event()
        self._threads: list[threading.Thread] = []
        if not synchronous:
            for i in range(threads):
                thread = threading.Thread(target=self._run, name=f"{name}-{i}", daemon=True)
                thread.start()
                self._threads.append(thread)

    def _run(self) -> None:
        try:
            while True:
                item = self._queue.get()
                if item is self._DONE:
                    return
                if self._error is None and not self._aborted.is_set():
                    try:
                        self._work(item)
                    except Exception as exc:  # noqa: BLE001 - re-raised in the caller's thread by put / close
                        self._error = exc
        finally:
            if self._on_exit is not None:
                self._on_exit()

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def put(self, item: T) -> None:
        if self._synchronous:
            self._work(item)
            return
        self._raise()
        self._queue.put(item)

    def _stop(self) -> None:
        for _ in self._threads:
            self._queue.put(self._DONE)
        for thread in self._threads:
            thread.join()
        self._threads = []

    def close(self) -> None:
        self._stop()
        self._raise()

    def abort(self) -> None:
        self._aborted.set()
        self._stop()


@dataclass
class _Failure:
    exc: BaseException


class Ahead(Generic[T]):
    """Runs a generator on its own thread, up to `depth` items ahead of the loop that consumes it;
    re-raises its failure in the consumer. `close` stops it early (items already made are dropped)."""

    _END = object()

    def __init__(self, name: str, make: Callable[[], Iterable[T]], depth: int = 2):
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(make,), name=name, daemon=True)
        self._thread.start()

    def _run(self, make: Callable[[], Iterable[T]]) -> None:
        try:
            for item in make():
                if self._stop.is_set():
                    return
                self._queue.put(item)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            self._queue.put(_Failure(exc))
        finally:
            self._queue.put(self._END)

    def __iter__(self) -> Iterator[T]:
        while True:
            item = self._queue.get()
            if item is self._END:
                return
            if isinstance(item, _Failure):
                raise item.exc
            yield item

    def close(self) -> None:
        self._stop.set()
        while self._thread.is_alive():
            try:
                self._queue.get(timeout=0.1)
            except queue.Empty:
                pass


def call_in_thread(
    func: Callable[[], T], *, name: str, timeout: float, default: T, on_exit: Callable[[], Any] | None = None
) -> T:
    """`func()` on a thread of its own (e.g. to use a database connection other than the caller's,
    whose transaction must not include the work); `default` when it does not finish in time."""
    result: list[T] = [default]

    def run() -> None:
        try:
            result[0] = func()
        finally:
            if on_exit is not None:
                on_exit()

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    thread.join(timeout=timeout)
    return result[0]

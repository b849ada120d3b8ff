"""Pages of a lazy image stack read before napari asks for them.

A dataset folder's one image layer is a lazy stack of pages (:func:`~.image_stack.lazy_image_stack`):
napari reads a page when the slider reaches it, on the main thread's time. Reading a 2048 px page
(a stack's plane made RGB, a PNG decoded) takes 20 to 100 ms, the most of a page turn. While a
person looks at a page, the paging model asks for the pages next to it (:func:`read_ahead`); they
are read on one background thread, and the stack's chunk function takes a page read ahead instead
of reading it again (:meth:`PageReadAhead.take`). At most :data:`KEEP` pages are held, pages over
:data:`MAX_PAGE_BYTES` are never read ahead, and a request drops the pages no longer asked for.
"""

from __future__ import annotations

import concurrent.futures
import threading
import weakref
from collections.abc import Callable, Iterable

import numpy as np

__all__ = ["KEEP", "MAX_PAGE_BYTES", "PageReadAhead", "page_read_ahead", "read_ahead", "register"]

#: Pages held read ahead at most (the page before and the page after the one shown).
KEEP = 2
#: Pages larger than this (bytes) are not read ahead: two of them would hold too much memory.
MAX_PAGE_BYTES = 64 * 2**20
#: Seconds a read waits before it starts: a slider dragged or a key held reads nothing ahead.
DELAY = 0.15

_READER = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="napari-faster-rcnn-pages")
_STACKS: weakref.WeakValueDictionary = weakref.WeakValueDictionary()


class PageReadAhead:
    """Reads pages of one lazy stack ahead on a background thread; ``read(index)`` reads a page."""

    def __init__(self, read: Callable[[int], np.ndarray], count: int, page_bytes: int):
        self._read = read
        self.count = int(count)
        self.enabled = 0 < int(page_bytes) <= MAX_PAGE_BYTES
        self._lock = threading.Lock()
        self._pending: dict[int, tuple[concurrent.futures.Future, threading.Event]] = {}
        self.used = 0  # pages taken from a read ahead (for tests and benchmarks)

    def request(self, indices: Iterable[int]) -> None:
        """Read these pages ahead (the first :data:`KEEP` of them inside the stack); drop any other."""
        if not self.enabled:
            return
        wanted = [i for i in dict.fromkeys(int(i) for i in indices) if 0 <= i < self.count][:KEEP]
        with self._lock:
            for index in [i for i in self._pending if i not in wanted]:
                future, cancelled = self._pending.pop(index)
                cancelled.set()
                future.cancel()
            for index in wanted:
                if index not in self._pending:
                    cancelled = threading.Event()
                    self._pending[index] = (_READER.submit(self._run, index, cancelled), cancelled)

    def _run(self, index: int, cancelled: threading.Event):
        if cancelled.wait(DELAY):
            return None
        return self._read(index)

    def take(self, index: int) -> np.ndarray | None:
        """Page ``index`` if it was read ahead (waiting for a read under way), else None: the caller reads
        it. A page is handed out once; a read that failed is left to the caller, which reports it."""
        with self._lock:
            pending = self._pending.pop(int(index), None)
        if pending is None:
            return None
        future, cancelled = pending
        if not future.running() and not future.done():  # still queued: reading it now is no slower
            cancelled.set()
            future.cancel()
            return None
        try:
            page = future.result()
        except Exception:  # noqa: BLE001 (the caller reads the page again and reports what fails)
            return None
        if page is None:
            return None
        self.used += 1
        return page

    def clear(self) -> None:
        """Drop every page read ahead."""
        self.request([])


def register(name: str, ahead: PageReadAhead) -> None:
    """Tie ``ahead`` to the lazy stack (a dask array) of this ``name``."""
    _STACKS[name] = ahead


def page_read_ahead(array) -> PageReadAhead | None:
    """The read-ahead of a lazy stack made by :func:`~.image_stack.lazy_image_stack` (None for any other array)."""
    name = getattr(array, "name", None)
    return _STACKS.get(name) if isinstance(name, str) else None


def read_ahead(array, indices: Iterable[int]) -> bool:
    """Read pages ``indices`` of ``array`` ahead when it is such a lazy stack; returns whether it is."""
    ahead = page_read_ahead(array)
    if ahead is None:
        return False
    ahead.request(indices)
    return True

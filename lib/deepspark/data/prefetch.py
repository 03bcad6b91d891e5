"""A batch iterator run ``depth`` batches ahead in a background thread."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator

from deepspark.data.chunk import Batch


class Prefetcher:
    """Run a batch iterator in a background thread, ``depth`` batches ahead, applying ``convert``.

    Decoding the next batches overlaps the training step; ``waited`` accumulates the seconds the
    consumer spent blocked, which is the data-loading stall the loop reports.
    """

    _DONE = object()

    def __init__(
        self, batches: Iterator[Batch], depth: int, convert: Callable[[Batch], object] = lambda b: b
    ) -> None:
        self._batches, self._convert = batches, convert
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._fill, name="deepspark-prefetch", daemon=True)
        self._thread.start()
        self.waited = 0.0

    def _fill(self) -> None:
        try:
            for batch in self._batches:
                item = self._convert(batch)
                while not self._stop.is_set():
                    try:
                        self._queue.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if self._stop.is_set():
                    break
        except BaseException as e:  # handed to the consumer, raised there
            self._queue.put(e)
            return
        finally:
            close = getattr(self._batches, "close", None)
            if close is not None and self._stop.is_set():
                close()
        self._queue.put(self._DONE)

    def __iter__(self) -> Iterator[object]:
        import time

        try:
            while True:
                start = time.perf_counter()
                item = self._queue.get()
                self.waited += time.perf_counter() - start
                if item is self._DONE:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            self.close()

    def close(self) -> None:
        """Stop the background thread and the reader under it."""
        self._stop.set()
        while self._thread.is_alive():
            try:
                self._queue.get_nowait()
            except queue.Empty:
                self._thread.join(timeout=0.05)

"""Loading ahead of the training step: worker threads decode the next batches while the model
trains on the current one.

The order of the batches (and any random draw that goes with it) is planned on the training
thread, so a run is the same with or without workers; only ``load(plan)`` runs on a worker.
Image decoding (PIL, OpenCV) and ``np.load`` release the GIL, so threads overlap with the
model's step. At most ``depth`` batches are in flight, which bounds the memory used.
"""

from __future__ import annotations

import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Deque, Generic, Iterator, Optional, TypeVar

Plan = TypeVar("Plan")
Batch = TypeVar("Batch")


class Prefetcher(Generic[Plan, Batch]):
    """``next()`` returns ``load(plan)`` for the plans of ``plans`` in order, loading up to
    ``depth`` of them ahead on ``workers`` threads (``workers = 0``: on the calling thread)."""

    def __init__(self, plans: Iterator[Plan], load: Callable[[Plan], Batch], workers: int, depth: int) -> None:
        if workers < 0 or depth < 1:
            raise ValueError(f"prefetching needs workers >= 0 and depth >= 1, got workers={workers}, depth={depth}")
        self._plans = plans
        self._load = load
        self._depth = depth
        self._pool: Optional[ThreadPoolExecutor] = (
            ThreadPoolExecutor(workers, thread_name_prefix="splat4d-prefetch") if workers > 0 else None
        )
        self._in_flight: Deque[Future] = deque()
        self.wait_seconds = 0.0
        """Time the caller spent waiting for batches (loading, when there are no workers)."""
        self.batches = 0

    def next(self) -> Batch:
        start = time.perf_counter()
        if self._pool is None:
            batch = self._load(next(self._plans))
        else:
            while len(self._in_flight) < self._depth:
                self._in_flight.append(self._pool.submit(self._load, next(self._plans)))
            batch = self._in_flight.popleft().result()  # a worker's exception is raised here
            self._in_flight.append(self._pool.submit(self._load, next(self._plans)))
        self.wait_seconds += time.perf_counter() - start
        self.batches += 1
        return batch

    def close(self) -> None:
        """Stop the workers (batches in flight are dropped)."""
        if self._pool is not None:
            for future in self._in_flight:
                future.cancel()
            self._pool.shutdown(wait=True)
            self._pool = None
        self._in_flight.clear()

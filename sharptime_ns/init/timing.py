"""Per-stage timings of the initialization."""

from __future__ import annotations

import contextlib
import time
from typing import Dict, Iterator, Optional


@contextlib.contextmanager
def timed(timings: Optional[Dict[str, float]], stage: str) -> Iterator[None]:
    """Add the seconds spent inside to ``timings[stage]`` (no-op when timings is None)."""
    start = time.perf_counter()
    try:
        yield
    finally:
        if timings is not None:
            timings[stage] = timings.get(stage, 0.0) + time.perf_counter() - start

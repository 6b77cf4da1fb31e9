"""Progress bar and per-stage timings of the initialization."""

from __future__ import annotations

import contextlib
import time
from typing import Dict, Iterator, Optional

from nerfstudio.utils.rich_utils import CONSOLE
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


def progress_bar(enabled: bool) -> Progress:
    """A rich progress bar on nerfstudio's console (a no-op when not ``enabled``)."""
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=CONSOLE,
        disable=not enabled,
        transient=False,
    )


@contextlib.contextmanager
def timed(timings: Optional[Dict[str, float]], stage: str) -> Iterator[None]:
    """Add the seconds spent inside to ``timings[stage]`` (no-op when timings is None)."""
    start = time.perf_counter()
    try:
        yield
    finally:
        if timings is not None:
            timings[stage] = timings.get(stage, 0.0) + time.perf_counter() - start

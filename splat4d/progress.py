"""The rich progress bar of long computations (initializations, scene generation)."""

from __future__ import annotations

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

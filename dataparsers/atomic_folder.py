"""Folders that appear whole or not at all: built as ``<out>.partial-<pid>`` and renamed to
``out`` only when complete, so an interrupted run never leaves a folder that is later trusted."""

from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

PARTIAL_MARK = ".partial-"


def partial_folder(out: Path) -> Path:
    """Where this process builds ``out``."""
    return out.with_name(f"{out.name}{PARTIAL_MARK}{os.getpid()}")


@contextmanager
def build_atomically(out: Path) -> Iterator[Path]:
    """Yields an empty ``<out>.partial-<pid>`` to fill; on success it replaces ``out``, on any
    error (or interruption) it is removed and ``out`` is left as it was."""
    partial = partial_folder(out)
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        yield partial
        if out.exists():
            shutil.rmtree(out)
        os.rename(partial, out)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise

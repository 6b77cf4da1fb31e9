"""Initializations cached next to the data: ``<data>/.splat4d_cache/<name>_<hash>.pt``.

The hash covers a version number (bumped by the method when its result changes for the same
inputs) and a key the method passes: its settings, cameras, and the size and modification time
of its input files (:func:`file_stats`, :func:`folder_stats`), so editing or replacing an input
recomputes. Entries are ``torch.save`` d dicts of tensors and Python primitives (loadable with
``weights_only=True``), written to a temporary file and renamed, so a reader never sees a
partial one; an unreadable entry is recomputed and overwritten.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional

import numpy as np
import torch
from nerfstudio.utils.rich_utils import CONSOLE

CACHE_DIR = ".splat4d_cache"

Entry = Dict[str, Any]


def file_stats(paths: Iterable[Path], root: Path) -> List[List]:
    """[path relative to ``root`` (absolute when outside it), size, mtime in ns] of each file;
    size and mtime are -1 for a missing file."""
    root = Path(root).resolve()
    stats = []
    for path in map(Path, paths):
        try:
            name = path.resolve().relative_to(root).as_posix()
        except ValueError:
            name = str(path.resolve())
        try:
            st = path.stat()
            stats.append([name, st.st_size, st.st_mtime_ns])
        except OSError:
            stats.append([name, -1, -1])
    return stats


def folder_stats(root: Path) -> List[List]:
    """:func:`file_stats` of every file under ``root`` but the cache folder, sorted."""
    root = Path(root)
    paths = []
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = sorted(d for d in subfolders if not (Path(folder) == root and d == CACHE_DIR))
        paths.extend(Path(folder) / name for name in sorted(files))
    return file_stats(paths, root)


def _jsonable(value: Any) -> Any:
    if torch.is_tensor(value) or isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def cache_path(data_dir: Path, name: str, version: int, key: Any) -> Path:
    """``<data_dir>/.splat4d_cache/<name>_<hash>.pt``; the hash is of ``version`` and ``key``
    (JSON-serializable; tensors and arrays as lists, anything else as its str)."""
    blob = json.dumps({"version": version, "key": key}, sort_keys=True, default=_jsonable)
    return Path(data_dir) / CACHE_DIR / f"{name}_{hashlib.sha256(blob.encode()).hexdigest()[:20]}.pt"


def save_atomically(entry: Entry, path: Path) -> None:
    """``torch.save`` to a temporary file beside ``path``, then renamed onto it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(entry, f)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def load_or_compute(path: Optional[Path], compute: Callable[[], Entry], label: str) -> Entry:
    """The entry at ``path``, else ``compute()``, saved there (a warning when it cannot be
    written); ``path`` None: caching is off, always ``compute()``."""
    if path is None:
        return compute()
    if path.is_file():
        try:
            entry = torch.load(path, weights_only=True)
            CONSOLE.log(f"{label}: loaded the cached initialization {path}")
            return entry
        except Exception as err:  # a corrupt or incompatible entry: recompute it
            CONSOLE.log(f"[yellow]{label}: ignoring the unreadable cache {path}: {err}")
    entry = compute()
    try:
        save_atomically(entry, path)
        CONSOLE.log(f"{label}: cached the initialization to {path}")
    except OSError as err:
        warnings.warn(f"{label}: could not write the cache {path}: {err}", stacklevel=2)
    return entry

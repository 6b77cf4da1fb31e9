"""Initializations cached next to the data: ``<data>/.splat4d_cache/<name>_<hash>.pt``.

The hash covers what the caller passes (its config, camera matrices, ...) and the size and
modification time of every file under the data folder (the cache folder excepted), so editing
or replacing any input recomputes. Entries are ``torch.save`` d dicts of tensors and Python
primitives (loadable with ``weights_only=True``), written to a temporary file and renamed, so a
reader never sees a partial one; an unreadable entry is recomputed and overwritten.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any, Callable, Dict, List

import torch
from nerfstudio.utils.rich_utils import CONSOLE

CACHE_DIR = ".splat4d_cache"


def folder_stats(root: Path) -> List[List]:
    """[relative path, size, mtime in ns] of every file under ``root`` but the cache folder, sorted."""
    root = Path(root)
    stats = []
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = sorted(d for d in subfolders if not (Path(folder) == root and d == CACHE_DIR))
        for name in sorted(files):
            path = Path(folder) / name
            st = path.stat()
            stats.append([path.relative_to(root).as_posix(), st.st_size, st.st_mtime_ns])
    return stats


def cache_path(data_dir: Path, name: str, key: Any) -> Path:
    """``<data_dir>/.splat4d_cache/<name>_<hash>.pt``; the hash is of ``key`` (JSON-serializable,
    tensors as lists) and of folder_stats(data_dir)."""
    payload = {"key": key, "files": folder_stats(data_dir)}
    blob = json.dumps(payload, sort_keys=True, default=lambda v: v.tolist() if torch.is_tensor(v) else str(v))
    return Path(data_dir) / CACHE_DIR / f"{name}_{hashlib.sha256(blob.encode()).hexdigest()[:20]}.pt"


def save_atomically(entry: Dict[str, Any], path: Path) -> None:
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


def load_or_compute(path: Path, compute: Callable[[], Dict[str, Any]], label: str) -> Dict[str, Any]:
    """The entry at ``path``, else ``compute()``, saved there (a warning when it cannot be written)."""
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

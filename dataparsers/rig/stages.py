"""Cached stage results in the output folder's work directory, so an interrupted or repeated
``splat4d-rig`` run redoes only what changed. A result is stored under a hash of everything it
depends on (input files by path, size and modification time, and the stage's settings) and is
written atomically (temporary file, then rename), so a half-written result is never read.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Dict, Optional

import numpy as np

STAGE_VERSION = 1


def stage_key(**inputs: Any) -> str:
    """A short hash of ``inputs`` (JSON-serialisable)."""
    text = json.dumps({"version": STAGE_VERSION, **inputs}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def load_json(work: Path, stage: str, key: str) -> Optional[Dict[str, Any]]:
    path = work / f"{stage}-{key}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def save_json(work: Path, stage: str, key: str, value: Dict[str, Any]) -> None:
    _atomic_write(work / f"{stage}-{key}.json", lambda tmp: tmp.write_text(json.dumps(value, indent=1)))


def load_arrays(work: Path, stage: str, key: str) -> Optional[Dict[str, np.ndarray]]:
    path = work / f"{stage}-{key}.npz"
    if not path.is_file():
        return None
    with np.load(path) as data:
        return {name: data[name] for name in data.files}


def save_arrays(work: Path, stage: str, key: str, arrays: Dict[str, np.ndarray]) -> None:
    def write(tmp: Path) -> None:
        with tmp.open("wb") as f:
            np.savez(f, **arrays)

    _atomic_write(work / f"{stage}-{key}.npz", write)


def _atomic_write(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.partial-{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)

"""``.npy`` reading that is safe on data-loading threads.

numpy parses every ``.npy`` header with ``ast.literal_eval``. CPython 3.11 keeps the AST
converter's recursion counter in interpreter-wide state, so parses on several threads at once
can fail with ``SystemError: AST constructor recursion depth mismatch`` (python/cpython#106905,
pytest-dev/pytest#10763); it happened once in CI with the prefetch workers reading 2D tracks. Only the header is parsed under a
lock; the data is read outside it, so the loader threads still overlap their I/O.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

_HEADER_LOCK = threading.Lock()


def read_npy_header(fh) -> tuple:
    """(shape, fortran_order, dtype) of the open ``.npy`` file ``fh``, left at the array data."""
    major, _ = np.lib.format.read_magic(fh)
    read = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
    with _HEADER_LOCK:
        return read(fh)


def load_npy(path: Path) -> np.ndarray:
    """The array in the ``.npy`` file ``path`` (no pickled objects); raises ValueError for a file
    that is not a ``.npy`` array or holds fewer bytes than its header says."""
    with open(path, "rb") as fh:
        shape, fortran_order, dtype = read_npy_header(fh)
        if dtype.hasobject:
            raise ValueError("holds Python objects (pickled); only plain arrays are read")
        count = int(np.prod(shape, dtype=np.int64))
        data = np.fromfile(fh, dtype=dtype, count=count)
    if data.size != count:
        raise ValueError(f"holds {data.size} of the {count} values its header declares (truncated?)")
    return data.reshape(shape, order="F" if fortran_order else "C")


def npy_shape(path: Path) -> tuple:
    """Shape of the array in the ``.npy`` file ``path`` (reads the header only)."""
    with open(path, "rb") as fh:
        return read_npy_header(fh)[0]

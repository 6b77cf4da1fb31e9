"""Reading OpenCV FileStorage YAML files (``cv2.FileStorage``) so that every failure is a
DatasetFormatError naming the file, the key and, where OpenCV says it, the line.

OpenCV parses the file when it is opened but builds a matrix only when it is read, so a file cut
off inside a matrix's ``data: [...]`` list can fail at either point; a key whose value is not what
was asked for (a cut ``K_01: !!opencv-matrix`` line is a string node, whose ``real()`` is
DBL_MAX) is refused here instead of being read as a number.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import List, Optional, Union

import cv2
import numpy as np

from dataparsers.errors import DatasetFormatError

CUT_SHORT_HINT = "is the file complete?"


class StorageFile:
    """One FileStorage file opened for reading; use as a context manager."""

    def __init__(self, path: Path) -> None:
        self.path = path
        if not path.is_file():
            raise DatasetFormatError(path, "is missing")
        try:
            self.fs = cv2.FileStorage(str(path), cv2.FILE_STORAGE_READ)
        except (cv2.error, SystemError) as err:  # OpenCV's parse errors can surface wrapped in SystemError
            raise DatasetFormatError(
                path, f"is not a readable OpenCV FileStorage YAML file ({_opencv_reason(err)}); {CUT_SHORT_HINT}"
            ) from err
        if not self.fs.isOpened():
            raise DatasetFormatError(path, "cannot be opened as an OpenCV FileStorage file")
        if not self.fs.root().isMap():
            self.fs.release()
            raise DatasetFormatError(path, f"holds no keys (an empty FileStorage file); {CUT_SHORT_HINT}")

    def __enter__(self) -> "StorageFile":
        return self

    def __exit__(self, *exc) -> None:
        self.fs.release()

    def has(self, key: str) -> bool:
        node = self.fs.getNode(key)
        return not (node.empty() or node.isNone())

    def matrix(self, key: str) -> Optional[np.ndarray]:
        """The ``!!opencv-matrix`` at ``key`` as float64 with finite values, None when absent."""
        if not self.has(key):
            return None
        node = self.fs.getNode(key)
        if not node.isMap():
            raise DatasetFormatError(
                self.path,
                f"'{key}' is {_describe(node)}, not an OpenCV matrix (!!opencv-matrix with rows, cols, dt, "
                f"data); {CUT_SHORT_HINT}",
            )
        try:
            value = node.mat()
        except (cv2.error, SystemError) as err:
            raise DatasetFormatError(
                self.path, f"'{key}' cannot be read as a matrix ({_opencv_reason(err)}); {CUT_SHORT_HINT}"
            ) from err
        if value is None:
            raise DatasetFormatError(self.path, f"'{key}' cannot be read as a matrix; {CUT_SHORT_HINT}")
        value = np.asarray(value, dtype=np.float64)
        if not np.all(np.isfinite(value)):
            raise DatasetFormatError(self.path, f"'{key}' has non-finite values: {value.tolist()}")
        return value

    def number(self, key: str) -> Optional[float]:
        """The finite number at ``key``, None when absent."""
        if not self.has(key):
            return None
        node = self.fs.getNode(key)
        if not (node.isInt() or node.isReal()):
            raise DatasetFormatError(self.path, f"'{key}' is {_describe(node)}, not a number; {CUT_SHORT_HINT}")
        value = node.real()
        if not math.isfinite(value):
            raise DatasetFormatError(self.path, f"'{key}' is {value}, not a finite number")
        return value

    def names(self, key: str = "names") -> List[str]:
        """The sequence of names (strings or integers) at ``key``."""
        node = self.fs.getNode(key)
        if node.empty() or node.isNone() or not node.isSeq():
            raise DatasetFormatError(self.path, f"has no '{key}' list of cameras")
        names = []
        for i in range(node.size()):
            item = node.at(i)
            if item.isString():
                names.append(item.string())
            elif item.isInt():
                names.append(str(int(item.real())))
            else:
                raise DatasetFormatError(self.path, f"item {i} of '{key}' is {_describe(item)}, not a camera name")
        if len(set(names)) != len(names):
            raise DatasetFormatError(self.path, f"'{key}' lists a camera more than once: {names}")
        return names


def _describe(node: cv2.FileNode) -> str:
    if node.isString():
        return f"the string {node.string()!r}"
    if node.isSeq():
        return "a list"
    if node.isMap():
        return "a mapping"
    return "a number" if node.isInt() or node.isReal() else "empty"


def _opencv_reason(err: Union[cv2.error, SystemError]) -> str:
    """OpenCV's own words: 'line N: problem' when it names the line."""
    cause = err if isinstance(err, cv2.error) else (err.__cause__ or err)
    where = re.search(r"\((\d+)\): (.+)$", getattr(cause, "func", "") or "")  # "<file>(<line>): <problem>"
    if where:
        return f"line {where[1]}: {where[2]}"
    message = getattr(cause, "err", "") or str(cause)
    return message.strip().splitlines()[-1] if message.strip() else type(cause).__name__

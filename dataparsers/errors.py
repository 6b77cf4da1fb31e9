"""The one error our dataparsers raise for bad input on disk."""

from __future__ import annotations

from pathlib import Path
from typing import Union


class DatasetFormatError(ValueError):
    """A dataset file or folder is missing or malformed.

    The message always starts with the offending path, then says what is wrong.
    """

    def __init__(self, path: Union[str, Path], problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")

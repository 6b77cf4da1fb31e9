"""Command lines of the documentation, and a dry parse of each by its own CLI.

Extraction (``commands_in``): lines of fenced ``bash`` / ``sh`` / ``shell`` blocks (backslash
continuations joined, ``#`` comments dropped) and inline code spans holding an option (``--``),
whose first word is ``ns-…``, ``splat4d-…`` or ``shapeofmotion-…``. In them ``<method>`` is
replaced by the method the document is about, a bare ``...`` (options left out) is dropped, and
a ``{a,b}`` word gives one command per alternative.

Dry parse (``parse_error``): the installed console script's entry function runs in this process
with ``tyro.cli`` replaced by one that parses the command's arguments and stops there, so
nothing is trained, rendered or written. A command with ``--help`` must print help (exit 0), and
without ``--help`` parse or lack only required options: tyro's help would hide a wrong option.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import re
import shlex
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Iterator, List, Optional, Tuple

import tyro

COMMAND = re.compile(r"(ns|splat4d|shapeofmotion)-[a-z0-9-]+")
FENCE = re.compile(r"^\s*```\s*(\w*)")
SHELL_LANGUAGES = {"bash", "sh", "shell"}
HELP = {"--help", "-h"}


@dataclass(frozen=True)
class DocCommand:
    where: str  # "<file>:<line>"
    argv: Tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.where}: {shlex.join(self.argv)}"


def commands_in(path: Path, method: Optional[str] = None) -> List[DocCommand]:
    """Every command line of the markdown file ``path`` (see the module docstring)."""
    found = []
    for line_no, text, inline in _candidate_lines(path.read_text().splitlines()):
        words = _words(text, inline)
        if not words or not COMMAND.fullmatch(words[0]) or (inline and not any(w.startswith("--") for w in words)):
            continue
        where = f"{path.name}:{line_no}"
        if "<method>" in words and method is None:
            raise ValueError(f"{where}: '<method>' in a document without a method: {text}")
        words = [method if w == "<method>" else w for w in words if w != "..."]
        for argv in itertools.product(*(_alternatives(w) for w in words)):
            found.append(DocCommand(where, tuple(argv)))
    return found


def parse_error(argv: Tuple[str, ...]) -> Optional[str]:
    """None when the command line parses, else what its CLI said."""
    scripts = entry_points(group="console_scripts", name=argv[0])
    if not scripts:
        return f"{argv[0]} is not an installed command"
    entry = next(iter(scripts)).load()
    args = list(argv[1:])
    if HELP & set(args):
        code, output = _dry_run(entry, args)
        if code != 0:
            return f"--help exited with {code}:\n{output}"
        args = [a for a in args if a not in HELP]
        code, output = _dry_run(entry, args)
        only_required_missing = "Required options" in output and not re.search(r"Unrecognized|Invalid|error", output)
        return None if code is None or only_required_missing else f"exited with {code}:\n{output}"
    code, output = _dry_run(entry, args)
    return None if code is None else f"exited with {code}:\n{output}"


class _Parsed(Exception):
    """Raised by the stand-in ``tyro.cli`` once the arguments are parsed."""


def _dry_run(entry, args: List[str]) -> Tuple[Optional[int], str]:
    """(None, output) when ``entry`` parsed ``args`` with tyro, else (exit code, output)."""
    real_cli = tyro.cli

    def parse_only(*positional, **keywords):
        real_cli(*positional, **{**keywords, "args": args})
        raise _Parsed

    out = io.StringIO()
    tyro.cli = parse_only
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            entry()
    except _Parsed:
        return None, out.getvalue()
    except SystemExit as exit_:
        return (exit_.code if isinstance(exit_.code, int) else 1), out.getvalue()
    finally:
        tyro.cli = real_cli
    return 1, f"{entry.__module__}.{entry.__name__} returned without calling tyro.cli (not a tyro CLI?)"


def _candidate_lines(lines: List[str]) -> Iterator[Tuple[int, str, bool]]:
    """(line number, text, inline?) of fenced shell lines (continuations joined) and inline code spans."""
    fence: Optional[str] = None
    pending, start = "", 0
    for number, line in enumerate(lines, start=1):
        opening = FENCE.match(line)
        if opening:
            fence = opening[1] if fence is None else None
            continue
        if fence is None:
            for span in re.findall(r"`([^`]+)`", line):
                yield number, span, True
        elif fence in SHELL_LANGUAGES:
            text = line.rstrip()
            start = start or number
            if text.endswith("\\"):
                pending += text[:-1] + " "
                continue
            yield start, pending + text, False
            pending, start = "", 0


def _words(text: str, inline: bool) -> List[str]:
    try:
        return shlex.split(text, comments=not inline)
    except ValueError:  # unbalanced quotes: prose, not a command
        return []


def _alternatives(word: str) -> List[str]:
    braces = re.fullmatch(r"(.*)\{([^{}]*,[^{}]*)\}(.*)", word)
    return [braces[1] + choice + braces[3] for choice in braces[2].split(",")] if braces else [word]

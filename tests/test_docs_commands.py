"""Every command line in README.md and the dataparser docs parses with its CLI, so documentation
and command-line options cannot drift apart (checker: tests/doc_commands.py)."""

from pathlib import Path

import pytest
from doc_commands import commands_in, parse_error

ROOT = Path(__file__).resolve().parents[1]
DOCS = {  # document -> the method its "<method>" stands for
    "README.md": None,
    "dataparsers/DATASETS.md": "sharptime",
    "dataparsers/IPHONE.md": "shapeofmotion",
}


def documented_commands():
    return [cmd for doc, method in DOCS.items() for cmd in commands_in(ROOT / doc, method)]


def test_every_documented_command_line_parses():
    commands = documented_commands()
    assert len({c.argv[0] for c in commands}) >= 5, "the extraction found too few kinds of command"
    failures = [f"{cmd}\n{error}" for cmd in commands if (error := parse_error(cmd.argv)) is not None]
    assert not failures, "documented command lines that do not parse:\n\n" + "\n\n".join(failures)


def test_extraction_of_fenced_and_inline_commands(tmp_path):
    doc = tmp_path / "DOC.md"
    doc.write_text(
        "Run `ns-train <method> --data X iphone` or `splat4d-synth --format {enerf,selfcap} --out D`;\n"
        "`ns-render camera-path` alone is a name, not a command line.\n"
        "```bash\n"
        "make setup\n"
        "ns-train <method> ... --data a \\\n"
        "    neural3dv --downscale 2   # comment\n"
        "```\n"
        "```\n"
        "ns-train not-shell-code\n"
        "```\n"
    )
    assert [str(c) for c in commands_in(doc, "sharptime")] == [
        "DOC.md:1: ns-train sharptime --data X iphone",
        "DOC.md:1: splat4d-synth --format enerf --out D",
        "DOC.md:1: splat4d-synth --format selfcap --out D",
        "DOC.md:5: ns-train sharptime --data a neural3dv --downscale 2",
    ]


@pytest.mark.parametrize(
    "argv, problem",
    [
        (("splat4d-synth", "--format", "enerf", "--out", "d", "--no-such-option", "1"), "Unrecognized"),
        (("splat4d-synth", "--format", "enerf", "--no-such-option", "--help"), "Unrecognized"),
        (("splat4d-synth", "--format", "nope", "--out", "d"), "invalid choice"),
        (("splat4d-no-such-tool", "--help"), "not an installed command"),
    ],
)
def test_checker_refuses_a_broken_command_line(argv, problem):
    assert problem in (parse_error(argv) or "")


@pytest.mark.parametrize(
    "argv",
    [("splat4d-synth", "--format", "enerf", "--out", "d"), ("splat4d-synth", "--help"), ("splat4d-synth-mono", "-h")],
)
def test_checker_accepts_a_valid_command_line(argv):
    assert parse_error(argv) is None

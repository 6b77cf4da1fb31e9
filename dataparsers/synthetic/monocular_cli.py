"""``splat4d-synth-mono``: write a synthetic monocular scene in the DyCheck iPhone layout with
Shape of Motion priors (train it with the ``iphone`` dataparser).

    splat4d-synth-mono --out data/synth_mono
    splat4d-synth-mono --out data/synth_mono_long --num-frames 60 --width 320 --height 240 --track-jitter 0.5
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import tyro
from rich.console import Console

from dataparsers.synthetic.monocular import MonocularConfig, write_monocular_scene


@dataclass
class SynthMonoCommand:
    out: Path
    """Scene folder to create."""
    overwrite: bool = False
    """Replace ``out`` if it exists."""
    scene: tyro.conf.OmitArgPrefixes[MonocularConfig] = field(default_factory=MonocularConfig)


def main() -> None:
    cmd = tyro.cli(SynthMonoCommand, description="Write a synthetic monocular scene (DyCheck iPhone layout + priors).")
    start = time.perf_counter()
    write_monocular_scene(cmd.out, cmd.scene, overwrite=cmd.overwrite)
    cfg = cmd.scene
    Console().print(
        f"wrote a monocular scene to {cmd.out}: {cfg.num_frames} training frames and 2 × {cfg.num_frames} "
        f"validation frames of {cfg.width}×{cfg.height} in {time.perf_counter() - start:.1f} s "
        f"(ground truth in {cmd.out / 'ground_truth'})"
    )


if __name__ == "__main__":
    main()

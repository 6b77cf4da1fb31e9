"""``splat4d-synth``: write the synthetic dynamic scene in a multi-view dataset format.

splat4d-synth --format neural3dv --out data/synth_n3dv
splat4d-synth --format selfcap --out data/synth_selfcap --distortion -0.05 0 0 0 0 --max-sync-offset 0.004
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import tyro
from rich.console import Console

from dataparsers.synthetic.writers import Format, SynthesisConfig, write_scene


@dataclass
class SynthCommand:
    format: Format
    """Dataset layout to write."""
    out: Path
    """Scene folder to create."""
    overwrite: bool = False
    """Replace ``out`` if it exists."""
    scene: tyro.conf.OmitArgPrefixes[SynthesisConfig] = field(default_factory=SynthesisConfig)


def main() -> None:
    cmd = tyro.cli(SynthCommand, description="Write the synthetic dynamic scene in a multi-view dataset format.")
    start = time.perf_counter()
    write_scene(cmd.format, cmd.out, cmd.scene, overwrite=cmd.overwrite)
    cfg = cmd.scene
    Console().print(
        f"wrote {cmd.format} scene to {cmd.out}: {cfg.num_cameras} cameras × {cfg.num_frames} frames of "
        f"{cfg.width}×{cfg.height} in {time.perf_counter() - start:.1f} s (ground truth in "
        f"{cmd.out / 'ground_truth'})"
    )


if __name__ == "__main__":
    main()

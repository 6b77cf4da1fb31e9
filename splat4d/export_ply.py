"""Export a trained dynamic model as a standard 3D Gaussian Splatting PLY at one time t
(positions at t, opacity multiplied by the temporal opacity), viewable in common splat viewers.

    splat4d-export-ply --load-config outputs/.../config.yml --time 0.5 --output-path scene_t05.ply
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import tyro
from nerfstudio.utils.eval_utils import eval_setup
from nerfstudio.utils.rich_utils import CONSOLE

from splat4d.dynamic_model import DynamicSplatModel, RenderGaussians

SH_C0 = 0.28209479177387814  # degree-0 SH basis constant


def ply_attributes(gaussians: RenderGaussians) -> "dict[str, np.ndarray]":
    """Per-vertex columns of the Inria 3DGS PLY layout."""
    n = gaussians.means.shape[0]
    if gaussians.sh_degree is None:  # plain RGB: store as the SH DC term
        dc, rest = (gaussians.colors[:, :3] - 0.5) / SH_C0, torch.zeros(n, 0, 3)
    else:
        dc, rest = gaussians.colors[:, 0], gaussians.colors[:, 1:]
    cols = {"x": gaussians.means[:, 0], "y": gaussians.means[:, 1], "z": gaussians.means[:, 2]}
    cols.update({f"n{a}": torch.zeros(n) for a in "xyz"})
    cols.update({f"f_dc_{i}": dc[:, i] for i in range(3)})
    rest = rest.transpose(1, 2).reshape(n, -1)  # channel-major, as the Inria code writes it
    cols.update({f"f_rest_{i}": rest[:, i] for i in range(rest.shape[1])})
    cols["opacity"] = torch.logit(gaussians.opacities.clamp(1e-6, 1 - 1e-6))
    cols.update({f"scale_{i}": torch.log(gaussians.scales[:, i]) for i in range(3)})
    quats = torch.nn.functional.normalize(gaussians.quats, dim=-1)
    cols.update({f"rot_{i}": quats[:, i] for i in range(4)})
    return {k: v.detach().cpu().numpy().astype(np.float32) for k, v in cols.items()}


def write_ply(path: Path, columns: "dict[str, np.ndarray]") -> None:
    n = len(next(iter(columns.values())))
    header = ["ply", "format binary_little_endian 1.0", f"element vertex {n}"]
    header += [f"property float {name}" for name in columns] + ["end_header"]
    data = np.stack(list(columns.values()), axis=1).astype("<f4")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.write(("\n".join(header) + "\n").encode("ascii"))
        f.write(data.tobytes())


@torch.no_grad()
def export_at_time(model: DynamicSplatModel, t: float, path: Path) -> int:
    model.eval()
    gaussians = model.gaussians_at(t)
    write_ply(path, ply_attributes(gaussians))
    return gaussians.means.shape[0]


@dataclass
class ExportPly:
    load_config: Path
    """Path to the config.yml of a trained run."""
    output_path: Path = Path("exports/scene.ply")
    """Where to write the PLY."""
    time: float = 0.0
    """Time in the dataparser's normalised [0, 1] sequence time."""

    def main(self) -> None:
        if not 0.0 <= self.time <= 1.0:
            raise SystemExit(f"--time must be in [0, 1] (normalised sequence time), got {self.time}")
        _, pipeline, _, _ = eval_setup(self.load_config, test_mode="inference")
        model = pipeline.model
        if not isinstance(model, DynamicSplatModel):
            raise SystemExit(f"{self.load_config} is not a splat4d model ({type(model).__name__})")
        n = export_at_time(model, self.time, self.output_path)
        CONSOLE.print(f"wrote {n} Gaussians at t = {self.time} to {self.output_path}")


def entrypoint() -> None:
    tyro.cli(ExportPly).main()


if __name__ == "__main__":
    entrypoint()

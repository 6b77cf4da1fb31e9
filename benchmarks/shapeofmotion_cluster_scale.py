"""Time of Shape of Motion's track clustering at DyCheck scale (the default 40,000 tracks, 400
frames): the rigidity clustering against the reference's velocity k-means, measured in the same run
on synthetic rigid bodies (each spinning about its own axis at its own rate and drifting, half of
the observations visible, 1 cm noise). Prints a table with the time ratio and each result's purity
(share of tracks in a cluster whose majority body is theirs).

    PYTHONPATH=. OMP_NUM_THREADS=1 .venv/bin/python benchmarks/shapeofmotion_cluster_scale.py
"""

from __future__ import annotations

import resource
import time
from dataclasses import dataclass

import torch
import tyro

from shapeofmotion_ns.track_clusters import cluster_tracks


def rigid_bodies(num_tracks: int, num_frames: int, num_bodies: int, seed: int) -> tuple:
    """Tracks xyz [P, T, 3], visible [P, T] and each track's body [P] (module docstring)."""
    g = torch.Generator().manual_seed(seed)
    body = torch.randint(0, num_bodies, (num_tracks,), generator=g)
    local = 0.3 * torch.randn(num_tracks, 3, generator=g)
    t = torch.arange(num_frames).float()
    xyz = torch.zeros(num_tracks, num_frames, 3)
    for b in range(num_bodies):
        angle = 0.01 * (b + 1) * t
        R = torch.zeros(num_frames, 3, 3)
        R[:, 0, 0], R[:, 0, 1], R[:, 1, 0], R[:, 1, 1], R[:, 2, 2] = (
            angle.cos(),
            -angle.sin(),
            angle.sin(),
            angle.cos(),
            1,
        )
        drift = torch.stack([0.005 * b * t, torch.zeros_like(t), torch.full_like(t, 2.0 * b)], dim=-1)
        members = body == b
        xyz[members] = torch.einsum("tij,pj->pti", R, local[members]) + drift
    xyz = xyz + 0.01 * torch.randn(xyz.shape, generator=g)
    return xyz, torch.rand(num_tracks, num_frames, generator=g) < 0.5, body


def purity(labels: torch.Tensor, body: torch.Tensor) -> float:
    return sum(int(torch.bincount(body[labels == c]).max()) for c in labels.unique()) / len(labels)


@dataclass
class ClusterScale:
    num_tracks: int = 40_000
    """Tracks (InitConfig.num_dynamic's default)."""
    num_frames: int = 400
    """Frames (a DyCheck capture)."""
    num_bodies: int = 5
    """Rigid bodies of the synthetic tracks."""
    num_clusters: int = 10
    """Clusters (InitConfig.num_bases' default)."""

    def main(self) -> None:
        xyz, visible, body = rigid_bodies(self.num_tracks, self.num_frames, self.num_bodies, seed=0)
        rows = {}
        for method in ("velocity", "rigidity"):
            start = time.perf_counter()
            labels = cluster_tracks(method, xyz, visible, self.num_clusters, seed=0)  # type: ignore[arg-type]
            rows[method] = (time.perf_counter() - start, purity(labels, body))
        print(f"{self.num_tracks} tracks × {self.num_frames} frames, {torch.get_num_threads()} thread(s)")
        print("| clustering | time (s) | ratio to velocity | purity |\n|---|---|---|---|")
        for method, (seconds, share) in rows.items():
            print(f"| {method} | {seconds:.1f} | {seconds / rows['velocity'][0]:.1f}× | {share:.3f} |")
        print(f"peak memory of the process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB")


if __name__ == "__main__":
    tyro.cli(ClusterScale).main()

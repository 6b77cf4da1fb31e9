"""Grouping of 3D tracks into motion clusters, one motion basis each (init_motion.py step 1).

- ``velocity`` (the reference): k-means on the tracks' unit velocity directions over time.
- ``rigidity``: spectral clustering by how rigidly pairs of tracks move together. A pair's
  deviation m_ij = median_t |d_ij(t) − median_t d_ij(t)| of their distance over the frames where
  both are visible is ~0 for two points of one rigid body whatever its motion (a rolling ball's
  top and bottom move in opposite directions but keep their distance), so a body is not cut by
  velocity direction nor merged with another body moving the same way. Affinity
  exp(−m_ij² / (σ_i σ_j)), σ_i the deviation to track i's k-th most rigidly attached track
  (self-tuning spectral clustering, Zelnik-Manor & Perona 2004, with k 5 % of the tracks rather
  than their 7: on the benchmark scene k = 7 cuts the graph into many tiny rigid pieces, cluster
  purity 0.71 vs 0.86). The spectral step runs on at most
  ``max_anchors`` tracks; every other track joins the cluster it deviates least from (median over
  that cluster's anchors). Deviations are measured on at most ``max_frames`` evenly spaced frames
  (40,000 tracks of 400 frames: about 3 min on one CPU thread, 1.2 GiB).
"""

from __future__ import annotations

from typing import Literal, Optional

import torch
from rich.progress import Progress
from sklearn.cluster import KMeans, SpectralClustering
from torch import Tensor

ClusterBy = Literal["velocity", "rigidity"]


def fill_missing(xyz: Tensor, visible: Tensor) -> Tensor:
    """Positions [P, T, 3] with unobserved frames linearly interpolated between the nearest
    observed ones (held constant before the first / after the last); every track needs one."""
    T = xyz.shape[1]
    steps = torch.arange(T, device=xyz.device).expand_as(visible)
    prev = torch.where(visible, steps, -1).cummax(dim=1).values
    nxt = torch.where(visible, steps, T).flip(1).cummin(dim=1).values.flip(1)
    prev = torch.where(prev < 0, nxt, prev)
    nxt = torch.where(nxt >= T, prev, nxt)
    span = (nxt - prev).clamp(min=1).float()
    w = ((steps - prev).float() / span)[..., None]
    gather = lambda idx: torch.gather(xyz, 1, idx[..., None].expand(-1, -1, 3))  # noqa: E731
    return (1 - w) * gather(prev) + w * gather(nxt)  # x_t = (1 − w) x_prev + w x_next


def cluster_tracks(
    method: ClusterBy, xyz: Tensor, visible: Tensor, num_clusters: int, seed: int, progress: Optional[Progress] = None
) -> Tensor:
    """Cluster labels [P] of tracks xyz [P, T, 3], visible [P, T]."""
    if method == "velocity":
        return cluster_by_velocity(xyz, visible, num_clusters, seed)
    if method == "rigidity":
        return cluster_by_rigidity(xyz, visible, num_clusters, seed, progress=progress)
    raise ValueError(f"cluster_by must be 'velocity' or 'rigidity', got {method!r}")


def cluster_by_velocity(xyz: Tensor, visible: Tensor, num_clusters: int, seed: int) -> Tensor:
    """k-means labels [P] of the tracks' unit velocity directions over time."""
    filled = fill_missing(xyz, visible)
    velocity = filled[:, 1:] - filled[:, :-1]
    directions = velocity / (velocity.norm(dim=-1, keepdim=True) + 1e-5)
    kmeans = KMeans(n_clusters=min(num_clusters, len(xyz)), n_init=1, random_state=seed)
    return torch.from_numpy(kmeans.fit_predict(directions.reshape(len(xyz), -1).double().numpy())).long()


def distance_deviation(xyz_a: Tensor, vis_a: Tensor, xyz_b: Tensor, vis_b: Tensor, min_frames: int = 3) -> Tensor:
    """m_ab [A, B] = median_t |d_ab(t) − median_t d_ab(t)| over co-visible frames (module docstring);
    NaN for pairs seen together in fewer than ``min_frames`` frames."""
    d = torch.cdist(xyz_a.transpose(0, 1), xyz_b.transpose(0, 1))  # [T, A, B]
    both = vis_a.T[:, :, None] & vis_b.T[:, None, :]
    d = torch.where(both, d, torch.nan)
    deviation = (d - d.nanmedian(dim=0).values).abs().nanmedian(dim=0).values
    return torch.where(both.sum(dim=0) >= min_frames, deviation, torch.nan)


def cluster_by_rigidity(
    xyz: Tensor,
    visible: Tensor,
    num_clusters: int,
    seed: int,
    max_anchors: int = 1000,
    max_frames: int = 60,
    neighbour_fraction: float = 0.05,
    chunk_elements: int = 2**24,
    progress: Optional[Progress] = None,
) -> Tensor:
    """Spectral-clustering labels [P] by pairwise rigidity (module docstring), measured on at most
    ``max_frames`` evenly spaced frames, ``chunk_elements`` pair-frame distances at a time."""
    P, T = visible.shape
    frames = torch.linspace(0, T - 1, min(T, max_frames)).round().long().unique()
    xyz, visible = xyz[:, frames], visible[:, frames]
    generator = torch.Generator().manual_seed(seed)
    anchors = torch.randperm(P, generator=generator)[: min(max_anchors, P)].sort().values
    rows = max(1, chunk_elements // (len(anchors) * len(frames)))
    task = progress.add_task("clustering tracks by rigidity", total=P) if progress is not None else None

    def deviations(members: Tensor) -> Tensor:  # m [len(members), A], chunked over the members
        out = []
        for chunk in members.split(rows):
            out.append(distance_deviation(xyz[chunk], visible[chunk], xyz[anchors], visible[anchors]))
            if progress is not None:
                progress.update(task, advance=len(chunk))
        return torch.cat(out)

    m = deviations(anchors)
    m.fill_diagonal_(0.0)
    known = torch.where(m.isnan(), torch.inf, m)
    neighbour = min(max(1, round(neighbour_fraction * len(anchors))), len(anchors) - 1)
    sigma = known.sort(dim=1).values[:, neighbour]
    sigma = torch.where(sigma.isfinite(), sigma, known[known.isfinite()].max()).clamp(min=1e-8)
    affinity = torch.exp(-(known**2) / (sigma[:, None] * sigma[None]))  # A_ij = exp(−m_ij² / (σ_i σ_j))
    affinity = (affinity + affinity.T) / 2  # cdist's rounding differs by argument order
    spectral = SpectralClustering(
        n_clusters=min(num_clusters, len(anchors)),
        affinity="precomputed",
        random_state=seed,
        assign_labels="cluster_qr",
    )
    anchor_labels = torch.from_numpy(spectral.fit_predict(affinity.double().numpy())).long()
    clusters = anchor_labels.unique()
    others = torch.ones(P, dtype=torch.bool)
    others[anchors] = False
    labels = torch.empty(P, dtype=torch.long)
    labels[anchors] = anchor_labels
    if others.any():
        dev = deviations(others.nonzero()[:, 0])
        score = torch.stack([dev[:, anchor_labels == c].nanmedian(dim=1).values for c in clusters], dim=1)
        labels[others] = clusters[torch.where(score.isnan(), torch.inf, score).argmin(dim=1)]
    return labels

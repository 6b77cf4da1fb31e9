"""Per triangulated frame: dynamic masks, triangulation and static/dynamic split, in this process
or in forked worker processes."""

from __future__ import annotations

import multiprocessing
import os
import shutil
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Optional

import cv2
import numpy as np

from sharptime_ns.init.change_masks import ChangeMasker
from sharptime_ns.init.config import TriangulationConfig, VelocityInitConfig
from sharptime_ns.init.flow_masks import FlowMasker, flow_mask
from sharptime_ns.init.images import ImageCache
from sharptime_ns.init.inputs import MultiViewFrames, check_intrinsics
from sharptime_ns.init.split import split_points
from sharptime_ns.init.timing import timed
from sharptime_ns.init.triangulation import FramePoints, triangulate_frame, use_gpu
from sharptime_ns.init.user_masks import find_user_masks


def frame_stride(num_frames: int, config: TriangulationConfig) -> int:
    """``frame_stride``, or when 0 ⌈num_frames / max_triangulated_frames⌉ (the last frame,
    always triangulated, may add one)."""
    if config.frame_stride > 0:
        return config.frame_stride
    return max(1, -(-num_frames // max(1, config.max_triangulated_frames)))


def triangulated_frames(num_frames: int, stride: int) -> List[int]:
    """Every ``stride``-th frame index, and the last one."""
    idx = list(range(0, num_frames, max(1, stride)))
    if idx[-1] != num_frames - 1:
        idx.append(num_frames - 1)
    return idx


@dataclass
class FrameResult:
    """What the init keeps of one triangulated frame."""

    static_xyz: np.ndarray  # [S, 3]
    static_rgb: np.ndarray  # [S, 3] uint8
    dynamic: FramePoints
    depths: np.ndarray  # [P] mean depth of each point in its observing cameras
    errors: np.ndarray  # [P] reprojection errors
    mask_fractions: List[float]  # per camera
    user_masks: int  # cameras whose mask came from the user
    timings: Dict[str, float]  # seconds per stage


class FrameWorker:
    """Masks, triangulation and static/dynamic split of one frame (in this process or a forked worker)."""

    def __init__(self, frames: MultiViewFrames, config: VelocityInitConfig, workdir: Path, first: int) -> None:
        self.frames, self.config, self.workdir, self.first = frames, config, workdir, first
        self.Ks = np.asarray(frames.Ks, np.float64)
        self.w2c = np.asarray(frames.w2c, np.float64)
        masks = config.masks
        self.user_masks = (
            find_user_masks(Path(frames.data_dir), masks.masks_dir, frames.camera_names)
            if masks.use_user_masks
            else None
        )
        self.masker = FlowMasker(masks)
        self.changes = ChangeMasker(frames, masks)
        if masks.change_threshold > 0 and masks.static_split:  # the plates, before any fork: computed once,
            for cam in range(len(frames.camera_names)):  # shared by the workers; none where the user's masks cover
                if self.user_masks is None or not self.user_masks.covers(cam, [p[cam] for p in frames.image_paths]):
                    self.changes.plate(cam)
        self.cache = ImageCache(frames, masks.flow_max_side)

    def __call__(self, k: int) -> FrameResult:
        frames, config, num_frames = self.frames, self.config, len(self.frames.image_paths)
        num_cams = len(frames.camera_names)
        timings: Dict[str, float] = {}
        with timed(timings, "images"):
            self.cache.keep_only([k - 1, k, k + 1])
            images = [self.cache.get_rgb(k, c) for c in range(num_cams)]
            for j in (k - 1, k + 1):
                if 0 <= j < num_frames:
                    for c in range(num_cams):
                        self.cache.get_gray(j, c)
        if k == self.first:
            check_intrinsics(self.Ks, images, frames.camera_names)
        masks, fractions, user_count = [], [], 0
        with timed(timings, "masks"):
            for c in range(num_cams if config.masks.static_split else 0):  # no split: no masks needed
                mask = self.user_masks.load(c, k, frames.image_paths[k][c]) if self.user_masks is not None else None
                if mask is not None:
                    user_count += 1
                else:
                    mask = flow_mask(self.cache, self.masker, k, c, num_frames, images[c].shape[1])
                    changed = self.changes.mask(images[c], c)
                    if changed is not None:
                        mask = mask | changed
                masks.append(mask)
                fractions.append(float(mask.mean()))
        workdir = self.workdir / f"frame_{k:06d}"
        points = triangulate_frame(images, self.Ks, self.w2c, workdir, config.triangulation, config.seed, timings)
        shutil.rmtree(workdir, ignore_errors=True)  # image copies and database: bounded scratch space
        with timed(timings, "split"):
            vote = config.masks.dynamic_vote_fraction
            if config.masks.static_split:
                is_dyn, depth = split_points(points, masks, images, self.Ks, self.w2c, vote)
            else:  # every point dynamic; the split's empty masks give the points' depths only
                no_masks = [np.zeros(image.shape[:2], bool) for image in images]
                _, depth = split_points(points, no_masks, images, self.Ks, self.w2c, vote)
                is_dyn = np.ones(points.num_points, bool)
        return FrameResult(
            static_xyz=points.xyz[~is_dyn],
            static_rgb=points.colors[~is_dyn],
            dynamic=points.subset(is_dyn),
            depths=depth,
            errors=points.errors,
            mask_fractions=fractions,
            user_masks=user_count,
            timings=timings,
        )


_WORKER: Optional[FrameWorker] = None  # the frame worker of a forked process


def _install_worker(worker: FrameWorker) -> None:
    global _WORKER
    # pycolmap's glog catches SIGTERM to print a stack trace, which can deadlock in a forked worker
    # (on a lock held at the fork): Pool.terminate, on an error in another frame, must end it.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _WORKER = worker


def _run_installed(k: int) -> FrameResult:
    assert _WORKER is not None, "frame worker not installed"
    return _WORKER(k)


def num_frame_workers(config: VelocityInitConfig, num_jobs: int) -> int:
    """Worker processes for ``num_jobs`` frames (see ``VelocityInitConfig.num_workers``)."""
    if config.num_workers > 0:
        workers = config.num_workers
    elif use_gpu(config.triangulation):
        workers = 1  # CUDA and fork do not mix; GPU SIFT is fast anyway
    else:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        workers = min(cores, 4)
    return max(1, min(workers, num_jobs))


def map_frames(worker: FrameWorker, frame_indices: List[int], num_workers: int) -> Iterator[FrameResult]:
    """``worker(k)`` for each frame, in order; by ``num_workers`` forked processes when > 1 (fork:
    the workers share the parent's memory and its frame list, and no pickling of the worker)."""
    if num_workers <= 1:
        yield from map(worker, frame_indices)
        return
    # No OpenCV worker threads may exist at the fork: a child cannot use, or even resize, a thread
    # pool whose threads stayed behind in the parent (it hangs). The workers run OpenCV serially.
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        with multiprocessing.get_context("fork").Pool(num_workers, _install_worker, (worker,)) as pool:
            yield from pool.imap(_run_installed, frame_indices)
    finally:
        cv2.setNumThreads(threads)

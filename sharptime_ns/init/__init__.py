"""SharpTimeGS velocity-aware initialization (issue 6, "Velocity-aware initialization").

From synchronized, calibrated multi-view video frames, before training:

1. **Dynamic masks** per frame and camera: user-provided masks from ``<data_dir>/masks/`` when
   present (``masks/<camera>/<frame>.png``, white = dynamic, ``<frame>`` = the stem of that
   frame's image file or the frame index; ``user_masks.py``), otherwise optical flow (OpenCV DIS
   or Farnebäck) between consecutive frames of the same camera, thresholded on its magnitude,
   cleaned morphologically, and kept only in regions whose brightness actually changes
   (``flow_masks.py``).
2. **Per-frame point clouds**: for each time step, SIFT features of all cameras are matched and
   triangulated with the *known* poses by pycolmap (``triangulation.py``), in parallel over
   frames (``frames.py``).
3. **Static / dynamic split**: a point is dynamic when its reprojection lands in the dynamic mask
   in more than ``dynamic_vote_fraction`` of the cameras that observe it (``split.py``).
4. **Velocity**: dynamic points of adjacent frames are matched (kNN + SIFT descriptors), their
   displacement ÷ frame interval smoothed by a robust median (``velocity.py``). Static points get
   v = 0. The temporal parameters and the stored velocity v × f(σt, r) follow (``points.py``).
5. **Dedup, background and cap**: static points of all frames are merged by a voxel downsample,
   a far background shell of static points is added (``background.py``), and the total is capped
   at ``max_points`` (``merge.py``).

Settings: ``config.py`` (one sub-config per stage); inputs and their checks: ``inputs.py``; the
driver, with the cache: ``driver.py``.

The geometric result (everything but the temporal initial values) is cached in
``<data_dir>/.splat4d_cache/sharptime_init_<hash>.pt`` (:mod:`splat4d.cache`), keyed by the
geometry-related settings and the inputs (image/mask files with size and mtime, intrinsics,
poses, times); the temporal initial values are applied after loading.

Time: ``MultiViewFrames.times`` are normalized sequence times in [0, 1], and the returned T, σt,
r and v are in that normalized time too (v per normalized time). The model
(``SharpTimeModel.init_in_time_unit``) is the one place that converts them to its time unit.

Usage::

    from sharptime_ns.init.config import VelocityInitConfig
    from sharptime_ns.init.driver import velocity_aware_init
    from sharptime_ns.init.inputs import MultiViewFrames

    frames = MultiViewFrames(image_paths, Ks, w2c, times, camera_names, data_dir)
    points = velocity_aware_init(frames, VelocityInitConfig())
    if points is None:  # too few triangulated points (a VelocityInitWarning was issued)
        ...  # random initialization
"""

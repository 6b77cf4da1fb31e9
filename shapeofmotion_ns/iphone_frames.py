"""The training frames of an ``iphone`` dataparser dataset (dataparsers/iphone) as
:class:`~shapeofmotion_ns.frames.TrainingFrames`.

Metadata keys read: ``frame_names``, ``time_ids``, ``num_time_steps``, ``tracks``,
``missing_priors``; batch fields: ``image``, ``mask``, ``depth_image``, ``motion_mask``.
"""

from __future__ import annotations

from nerfstudio.data.datasets.base_dataset import InputDataset
from nerfstudio.models.splatfacto import get_viewmat

from shapeofmotion_ns.frames import FrameData, TrainingFrames

REQUIRED_PRIORS = ("depth", "motion_mask", "tracks")


def check_priors(metadata: dict) -> None:
    """A clear error when the parser found no depth, motion masks or 2D tracks."""
    missing = [name for name in REQUIRED_PRIORS if name in metadata.get("missing_priors", ())]
    if "tracks" not in metadata or "num_time_steps" not in metadata:
        raise ValueError("Shape of Motion needs the 'iphone' dataparser (metadata 'tracks', 'num_time_steps', ...)")
    if missing:
        raise ValueError(
            f"Shape of Motion needs {', '.join(missing)} priors for the training frames; the dataparser "
            f"found none (see its 'no …' messages for the folders it looked in)"
        )


def training_frames(dataset: InputDataset) -> TrainingFrames:
    meta = dataset.metadata
    check_priors(meta)
    cameras = dataset.cameras

    def load(index: int) -> FrameData:
        data = dataset.get_data(index, image_type="float32")
        return FrameData(
            image=data["image"][..., :3],
            depth=data["depth_image"][..., 0],
            motion_mask=data["motion_mask"][..., 0],
            valid=data["mask"][..., 0],
        )

    return TrainingFrames(
        names=list(meta["frame_names"]),
        w2c=get_viewmat(cameras.camera_to_worlds),
        K=cameras.get_intrinsics_matrices(),
        time_ids=meta["time_ids"].long(),
        num_time_steps=int(meta["num_time_steps"]),
        load=load,
        tracks=meta["tracks"],
        track_scale=dataset.scale_factor,
    )

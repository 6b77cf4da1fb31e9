"""``shapeofmotion-eval-tracks``: 3D / 2D tracking metrics of a trained Shape of Motion run,
written as JSON.

    shapeofmotion-eval-tracks --load-config outputs/.../config.yml --output-path tracks.json
    shapeofmotion-eval-tracks --load-config ... --ground-truth tracks   # synthetic scenes

Metrics (track_metrics.py): EPE (m), δ3D@5cm / @10cm, AJ, ⟨δ_avg⟩ (4–64 px thresholds, in
pixels of the 1x images as in the reference) and occlusion accuracy; with ``image_metrics``
also mPSNR, mSSIM and mLPIPS ("unavailable" without local LPIPS weights) over the validation
images' covisible pixels (eval_images.py).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Literal, Optional

import torch
import tyro
import yaml
from nerfstudio.engine.trainer import TrainerConfig
from nerfstudio.pipelines.base_pipeline import Pipeline
from nerfstudio.utils.eval_utils import eval_load_checkpoint
from nerfstudio.utils.rich_utils import CONSOLE

from dataparsers.iphone.dataset import IPhoneDataset
from dataparsers.iphone.layout import LIDAR, IPhoneLayout
from shapeofmotion_ns.eval_images import validation_image_metrics
from shapeofmotion_ns.track_annotations import AnnotatedFrames, from_ground_truth_tracks, from_keypoints
from shapeofmotion_ns.track_metrics import (
    TrackAnnotations,
    TrackPredictions,
    align_to_metric,
    similarity_alignment,
    tracking_2d_metrics,
    tracking_3d_metrics,
)
from shapeofmotion_ns.track_predictions import predict_tracks


@dataclass
class EvalTracks:
    load_config: Path
    """config.yml of the trained run."""
    output_path: Path = Path("track_metrics.json")
    """Where the JSON goes."""
    ground_truth: Literal["keypoints", "tracks"] = "keypoints"
    """keypoints: the scene's annotated keypoints (3D from ``keypoint_depth``); tracks: exact 3D
    tracks (``tracks_file``)."""
    keypoint_depth: str = LIDAR
    """Depth source for the keypoints' 3D positions (an iphone dataparser ``depth`` value)."""
    tracks_file: Optional[Path] = None
    """Ground-truth tracks; default <data>/ground_truth/tracks_3d.npz."""
    max_frames: int = 10
    """With ground-truth tracks: evenly spaced training frames to evaluate (all pairs are rendered)."""
    image_metrics: bool = True
    """Also report mPSNR / mSSIM / mLPIPS over the validation images."""
    max_images: int = 0
    """Validation images of the image metrics, evenly spaced (0: all)."""

    def main(self) -> Dict[str, float]:
        config, pipeline = load_trained(self.load_config)
        datamanager = pipeline.datamanager
        dataset = datamanager.train_dataset
        meta = dataset.metadata
        metric_scale = meta.get("metric_scale")
        if metric_scale is None:
            CONSOLE.print("[yellow]the scene has no metric scale: 3D errors are in nerfstudio units")
        annotated = self.annotations(datamanager, dataset, metric_scale or 1.0)
        ann = annotated.annotations
        cameras = dataset.cameras
        from_centres = camera_centres_ns(cameras, annotated.frames)
        scale, _, _ = similarity_alignment(from_centres, ann.camera_centres)
        predictions = predict_tracks(pipeline.model, cameras, annotated.frames, ann.points_2d, scale)
        metrics = score_tracks(predictions, ann, pixels_to_1x(dataset))
        if self.image_metrics:
            metrics.update(validation_image_metrics(pipeline, self.max_images))
        result = {
            **metrics,
            "ground_truth": self.ground_truth,
            "num_frames": len(annotated.frames),
            "num_points": int(ann.visible.shape[1]),
            "metric": metric_scale is not None,
        }
        self.output_path.parent.mkdir(parents=True, exist_ok=True)
        self.output_path.write_text(json.dumps(result, indent=2))
        CONSOLE.print(f"tracking metrics of {config.method_name} ({self.ground_truth}): {json.dumps(metrics)}")
        CONSOLE.print(f"saved to {self.output_path}")
        return result

    def annotations(self, datamanager, dataset, metric_scale: float) -> AnnotatedFrames:
        meta = dataset.metadata
        if self.ground_truth == "tracks":
            data_dir = datamanager.config.dataparser.data
            path = self.tracks_file or IPhoneLayout(data_dir).ground_truth_dir / "tracks_3d.npz"
            outputs = datamanager.train_dataparser_outputs
            to_ns = torch.eye(4)
            to_ns[:3] = outputs.dataparser_transform * outputs.dataparser_scale
            return from_ground_truth_tracks(
                path, dataset.cameras, meta["time_ids"], to_ns, metric_scale, self.max_frames
            )
        keypoints = meta.get("keypoints")
        if keypoints is None:
            raise ValueError(
                "the scene has no keypoints (keypoint/2x/train/); use --ground-truth tracks on synthetic scenes"
            )
        parser = dataclasses.replace(datamanager.config.dataparser, depth=self.keypoint_depth).setup()
        depth_dataset = IPhoneDataset(parser.get_dataparser_outputs("train"), scale_factor=dataset.scale_factor)
        points = keypoints.points.clone()
        points[..., :2] *= dataset.scale_factor
        return from_keypoints(
            dataset.cameras,
            keypoints.image_indices,
            points,
            lambda i: depth_dataset.get_data(i)["depth_image"][..., 0],
            metric_scale,
        )


def pixels_to_1x(dataset) -> float:
    """1x-image pixels per pixel of the dataset's images (the 2D thresholds are in 1x pixels)."""
    return dataset.metadata["priors"].full_sizes[0][0] / float(dataset.cameras.width[0])


def score_tracks(predictions: TrackPredictions, annotations: TrackAnnotations, to_1x: float) -> Dict[str, float]:
    """3D metrics after the Sim(3) alignment of the camera centres, 2D metrics in 1x pixels."""
    aligned, _ = align_to_metric(predictions, annotations)
    pred_1x = dataclasses.replace(predictions, points_2d=predictions.points_2d * to_1x)
    ann_1x = dataclasses.replace(annotations, points_2d=annotations.points_2d * to_1x)
    return {**tracking_3d_metrics(aligned, annotations), **tracking_2d_metrics(pred_1x, ann_1x)}


def load_trained(config_path: Path) -> tuple[TrainerConfig, Pipeline]:
    """The run's config and pipeline with its last checkpoint (like nerfstudio's eval_setup,
    which also works when the method is not registered as a nerfstudio plugin), on the run's
    device (``machine.device_type``), or the CPU when that is CUDA and there is none."""
    config = yaml.load(config_path.read_text(), Loader=yaml.Loader)
    config.load_dir = config.get_checkpoint_dir()
    device = config.machine.device_type
    if device == "cuda" and not torch.cuda.is_available():
        device = "cpu"
    pipeline = config.pipeline.setup(device=device, test_mode="test")
    pipeline.eval()
    eval_load_checkpoint(config, pipeline)  # numpy scalars in it are allowed by importing splat4d
    return config, pipeline


def camera_centres_ns(cameras, frames: torch.Tensor) -> torch.Tensor:
    """Camera centres [K, 3] of training images ``frames`` (nerfstudio c2w translations)."""
    return cameras.camera_to_worlds[frames][:, :3, 3]


def main() -> None:
    tyro.cli(EvalTracks).main()


if __name__ == "__main__":
    main()

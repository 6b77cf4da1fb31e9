"""SelfCap scenes: ``videos/<camera>.mp4`` (four-digit camera names) with EasyVolcap
calibration ``optimized/intri.yml`` / ``optimized/extri.yml`` and an optional
``optimized/sync.json`` of per-camera time offsets in seconds, ``{"<camera>": offset, …}``
(cameras it does not list have offset 0): frame n of a camera is at n / fps − offset.
Frames are decoded, undistorted and resized into the frame cache.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Literal, Optional, Sequence, Tuple, Type

from nerfstudio.utils.rich_utils import CONSOLE

from dataparsers.easyvolcap_calibration import read_calibration, require_calibrated, require_calibrated_size
from dataparsers.errors import DatasetFormatError
from dataparsers.multiview_base import CameraStream, MultiViewDataParser, MultiViewDataParserConfig, check_equal_counts
from dataparsers.video import probe_video
from splat4d.geometry import opencv_w2c_to_opengl_c2w

SelfCapPreset = Literal["dance1", "dance2", "corgi1", "corgi2", "bike1", "bike2"]


@dataclass(frozen=True)
class PresetValues:
    sequence: str  # the SelfCap capture the scene is cut from
    test_camera: str
    first_frame: int
    last_frame: int  # inclusive
    downscale: float


PRESETS: Dict[str, PresetValues] = {
    "dance1": PresetValues("hair", "0015", 4120, 4179, 2.0),
    "dance2": PresetValues("hair", "0015", 5530, 5589, 2.0),
    "corgi1": PresetValues("corgi", "0007", 200, 259, 2.0),
    "corgi2": PresetValues("corgi", "0007", 2950, 3009, 2.0),
    "bike1": PresetValues("bike", "0009", 8900, 8959, 1.0),
    "bike2": PresetValues("bike", "0009", 30020, 30079, 1.0),
}


@dataclass
class SelfCapDataParserConfig(MultiViewDataParserConfig):
    """SelfCap: <data>/videos/<camera>.mp4 + <data>/optimized/{intri,extri}.yml [+ sync.json]."""

    _target: Type = field(default_factory=lambda: SelfCapDataParser)
    preset: Optional[SelfCapPreset] = None
    """A published 60-frame scene (table in dataparsers/DATASETS.md); sets, and overrides,
    frame_start, frame_count, test_cameras and downscale."""
    downscale: float = 2.0
    """Divide the resolution by this (the published scenes use 2, bike 1)."""
    frame_count: Optional[int] = 60
    """Number of frames used (the published scenes use 60)."""


class SelfCapDataParser(MultiViewDataParser):
    config: SelfCapDataParserConfig

    def __init__(self, config: SelfCapDataParserConfig) -> None:
        if config.preset is not None:
            values = PRESETS[config.preset]
            config = dataclasses.replace(
                config,
                frame_start=values.first_frame,
                frame_count=values.last_frame - values.first_frame + 1,
                test_cameras=(values.test_camera,),
                downscale=values.downscale,
            )
            CONSOLE.print(
                f"SelfCap preset {config.preset} (capture '{values.sequence}'): frames "
                f"{values.first_frame}–{values.last_frame}, test camera {values.test_camera}, "
                f"downscale {values.downscale:g}"
            )
        super().__init__(config)

    def load_streams(self) -> Tuple[List[CameraStream], float]:
        root = self.require_data_folder()
        folder = root / "videos"
        if not folder.is_dir():
            raise DatasetFormatError(
                folder, "is missing (SelfCap layout: videos/<camera>.mp4 + optimized/intri.yml, extri.yml)"
            )
        videos = {p.stem: p for p in sorted(folder.glob("*.mp4"))}
        if not videos:
            raise DatasetFormatError(folder, "has no .mp4 videos")
        optimized = root / "optimized"
        calibration = read_calibration(optimized / "intri.yml", optimized / "extri.yml")
        require_calibrated(optimized / "extri.yml", calibration, videos, "videos/")
        selected = self.selected_cameras(list(videos), folder)
        offsets = read_sync(optimized / "sync.json", selected)
        streams, fps = [], 0.0
        for name in selected:
            calib, info = calibration[name], probe_video(videos[name])
            require_calibrated_size(optimized / "intri.yml", name, calib, (info.width, info.height), videos[name])
            streams.append(
                self.video_stream(
                    name,
                    videos[name],
                    info,
                    calib.K,
                    calib.distortion,
                    opencv_w2c_to_opengl_c2w(calib.w2c),
                    offsets[name],
                )
            )
            fps = info.fps
        check_equal_counts({videos[s.name]: len(s.frames) for s in streams})
        return streams, fps


def read_sync(path: Path, cameras: Sequence[str]) -> Dict[str, float]:
    """Time offset in seconds of each camera (0 without sync.json or for unlisted cameras)."""
    offsets = {c: 0.0 for c in cameras}
    if not path.is_file():
        return offsets
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DatasetFormatError(path, f"is not valid JSON ({err}); is the file complete?") from err
    if not isinstance(data, dict):
        raise DatasetFormatError(path, 'must be a JSON object {"<camera>": offset in seconds, ...}')
    for camera, value in data.items():
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            raise DatasetFormatError(path, f"offset of camera {camera} is {value!r}, not a finite number of seconds")
        if camera in offsets:
            offsets[camera] = float(value)
    return offsets

"""Auto-detecting multi-view dataparser: picks Neural3DV, SelfCap, ENeRF-Outdoor or EasyVolcap
from the folder's contents, so ``ns-train <method> --data DIR`` needs no subcommand.

Detection, in order:
- ``poses_bounds.npy`` or ``camXX.mp4`` files → Neural3DV;
- a ``videos/`` or ``optimized/`` folder → SelfCap;
- an ``images/`` folder with ``intri.yml`` / ``extri.yml`` → ENeRF-Outdoor when the camera
  folders are two-digit names holding six-digit ``.jpg`` frames, otherwise plain EasyVolcap.
The chosen format's own options live under ``neural3dv``, ``selfcap``, ``enerf_outdoor`` and
``easyvolcap`` (their ``data`` is replaced by this parser's).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Type

from nerfstudio.data.dataparsers.base_dataparser import DataParser, DataParserConfig, DataparserOutputs
from nerfstudio.utils.rich_utils import CONSOLE

from dataparsers.easyvolcap import EasyVolcapDataParserConfig, ENeRFOutdoorDataParserConfig, is_enerf_outdoor_layout
from dataparsers.errors import DatasetFormatError
from dataparsers.neural3dv import VIDEO_NAME, Neural3DVDataParserConfig
from dataparsers.selfcap import SelfCapDataParserConfig

Layout = Literal["neural3dv", "selfcap", "enerf_outdoor", "easyvolcap"]


def detect_layout(data: Path) -> Layout:
    """Which multi-view format ``data`` holds (see the module docstring)."""
    if not data.is_dir():
        raise DatasetFormatError(data, "is not a folder")
    if (data / "poses_bounds.npy").exists() or any(VIDEO_NAME.fullmatch(p.name) for p in data.iterdir()):
        return "neural3dv"
    if (data / "videos").is_dir() or (data / "optimized").is_dir():
        return "selfcap"
    if (data / "images").is_dir() and ((data / "intri.yml").exists() or (data / "extri.yml").exists()):
        return "enerf_outdoor" if is_enerf_outdoor_layout(data) else "easyvolcap"
    raise DatasetFormatError(
        data,
        "matches no multi-view layout; expected one of: camXX.mp4 + poses_bounds.npy "
        "(Neural3DV); videos/<camera>.mp4 + optimized/intri.yml, extri.yml (SelfCap); "
        "images/<camera>/<frame>.jpg + intri.yml, extri.yml (ENeRF-Outdoor / EasyVolcap)",
    )


@dataclass
class MultiViewAutoDataParserConfig(DataParserConfig):
    """Any of our multi-view formats, detected from the folder's contents."""

    _target: Type = field(default_factory=lambda: MultiViewAutoDataParser)
    data: Path = Path()
    """Scene folder."""
    neural3dv: Neural3DVDataParserConfig = field(default_factory=Neural3DVDataParserConfig)
    """Options used when the folder is a Neural3DV scene."""
    selfcap: SelfCapDataParserConfig = field(default_factory=SelfCapDataParserConfig)
    """Options used when the folder is a SelfCap scene."""
    enerf_outdoor: ENeRFOutdoorDataParserConfig = field(default_factory=ENeRFOutdoorDataParserConfig)
    """Options used when the folder is an ENeRF-Outdoor scene."""
    easyvolcap: EasyVolcapDataParserConfig = field(default_factory=EasyVolcapDataParserConfig)
    """Options used when the folder is another EasyVolcap scene."""


class MultiViewAutoDataParser(DataParser):
    config: MultiViewAutoDataParserConfig
    includes_time = True

    def __init__(self, config: MultiViewAutoDataParserConfig) -> None:
        super().__init__(config)
        self.layout = detect_layout(config.data)
        CONSOLE.print(f"{config.data}: detected the {self.layout} layout")
        self.parser = dataclasses.replace(getattr(config, self.layout), data=config.data).setup()

    def _generate_dataparser_outputs(self, split: str = "train", **kwargs) -> DataparserOutputs:
        return self.parser._generate_dataparser_outputs(split, **kwargs)

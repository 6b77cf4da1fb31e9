"""Our multi-view dataparsers as a tyro subcommand union, for a datamanager's ``dataparser`` field.

With ``dataparser: multiview_dataparser_union()`` a method accepts the subcommands of
dataparsers/DATASETS.md, ``ns-train <method> --data DIR neural3dv --downscale 2``, the way
nerfstudio's own methods accept ``colmap --downscale-factor 2`` (nerfstudio's
``AnnotatedDataParserUnion``); without a subcommand the field's default (normally the
auto-detecting ``multiview`` parser) is used. Subcommand names are the entry-point names of
pyproject.toml, and options follow the subcommand without a prefix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import tyro

from dataparsers.easyvolcap import EasyVolcapDataParserConfig, ENeRFOutdoorDataParserConfig
from dataparsers.multiview import MultiViewAutoDataParserConfig
from dataparsers.neural3dv import Neural3DVDataParserConfig
from dataparsers.selfcap import SelfCapDataParserConfig


def multiview_dataparser_union(default_data: Path = Path()) -> Any:
    """The union type over ``multiview`` (auto-detect, its ``data`` defaulting to ``default_data``),
    ``neural3dv``, ``enerf-outdoor``, ``selfcap`` and ``easyvolcap``."""
    defaults = {
        "multiview": MultiViewAutoDataParserConfig(data=default_data),
        "neural3dv": Neural3DVDataParserConfig(),
        "enerf-outdoor": ENeRFOutdoorDataParserConfig(),
        "selfcap": SelfCapDataParserConfig(),
        "easyvolcap": EasyVolcapDataParserConfig(),
    }
    union = tyro.extras.subcommand_type_from_defaults(defaults, prefix_names=False)
    return tyro.conf.OmitSubcommandPrefixes[union]

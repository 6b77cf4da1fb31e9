"""The SharpTimeGS datamanager takes the dataparser subcommands of dataparsers/DATASETS.md
(``neural3dv --downscale 2``), defaults to the auto-detecting parser on the demo scene, and runs
with every parser type (it reads ``dataparser.data``). The real ``ns-train`` command lines are
parsed by tests/test_docs_commands.py."""

from pathlib import Path

import pytest
import tyro

from dataparsers.easyvolcap import EasyVolcapDataParserConfig, ENeRFOutdoorDataParserConfig
from dataparsers.multiview import MultiViewAutoDataParserConfig
from dataparsers.neural3dv import Neural3DVDataParserConfig
from dataparsers.selfcap import SelfCapDataParserConfig
from dataparsers.synthetic.writers import SynthesisConfig, write_scene
from sharptime_ns.datamanager import DEMO_DATA, SharpTimeDatamanagerConfig


def parse(*args: str) -> SharpTimeDatamanagerConfig:
    return tyro.cli(SharpTimeDatamanagerConfig, args=list(args))


def test_no_subcommand_auto_detects_on_the_demo_scene():
    parser = parse().dataparser
    assert type(parser) is MultiViewAutoDataParserConfig and parser.data == DEMO_DATA


@pytest.mark.parametrize(
    "args, config_type, option, value",
    [
        (["neural3dv", "--downscale", "2"], Neural3DVDataParserConfig, "downscale", 2.0),
        (["enerf-outdoor", "--test-cameras", "03"], ENeRFOutdoorDataParserConfig, "test_cameras", ("03",)),
        (["selfcap", "--preset", "corgi1"], SelfCapDataParserConfig, "preset", "corgi1"),
        (["easyvolcap", "--fps", "25"], EasyVolcapDataParserConfig, "fps", 25.0),
        (["multiview", "--data", "scene"], MultiViewAutoDataParserConfig, "data", Path("scene")),
    ],
)
def test_subcommand_selects_the_format_and_takes_its_options(args, config_type, option, value):
    parser = parse(*args).dataparser
    assert type(parser) is config_type and getattr(parser, option) == value


def test_multiview_nests_each_formats_options():
    assert parse("multiview", "--neural3dv.downscale", "4").dataparser.neural3dv.downscale == 4.0


@pytest.mark.parametrize("args", [["colmap"], ["neural3dv", "--downscale-factor", "2"], ["iphone"]])
def test_unknown_subcommand_or_option_is_refused(args):
    with pytest.raises(SystemExit) as exit_:
        parse(*args)
    assert exit_.value.code == 2


SUBCOMMAND = {"neural3dv": "neural3dv", "enerf": "enerf-outdoor", "selfcap": "selfcap", "easyvolcap": "easyvolcap"}


@pytest.mark.parametrize("fmt", list(SUBCOMMAND))
def test_datamanager_runs_with_every_parser_type(tmp_path, fmt):
    scene = write_scene(
        fmt, tmp_path / fmt, SynthesisConfig(num_cameras=3, num_frames=2, width=32, height=24, supersample=1)
    )
    test_camera = ["--test-cameras", "01"] if fmt == "enerf" else []  # the others' defaults exist in the scene
    config = parse(SUBCOMMAND[fmt], "--data", str(scene), *test_camera)
    config.init_method = "random"  # the velocity init's own tests cover it; this checks the parser plumbing
    manager = config.setup(device="cpu", test_mode="val")
    frames = manager.multiview_frames()
    assert frames.data_dir == scene and len(frames.camera_names) == 2

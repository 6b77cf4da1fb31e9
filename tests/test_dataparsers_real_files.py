"""Calibration files shaped like the datasets' own tools write them (tests/calibration_text.py):
read as EasyMocap / EasyVolcap read them, and every calibration or metadata file cut short is a
DatasetFormatError naming it, never an OpenCV traceback or a misleading value."""

import re
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from calibration_text import EASYMOCAP, EASYVOLCAP, Printing, matrix_lines, write_text, write_tool_calibration

from dataparsers.easyvolcap import EasyVolcapDataParserConfig, ENeRFOutdoorDataParserConfig
from dataparsers.easyvolcap_calibration import Calibration, read_calibration
from dataparsers.errors import DatasetFormatError
from dataparsers.iphone.dataparser import IPhoneDataParserConfig
from dataparsers.iphone.layout import IPhoneLayout
from dataparsers.neural3dv import Neural3DVDataParserConfig
from dataparsers.selfcap import SelfCapDataParserConfig
from dataparsers.synthetic.monocular import MonocularConfig, write_monocular_scene
from dataparsers.synthetic.writers import SynthesisConfig, write_scene

TINY = SynthesisConfig(num_cameras=3, num_frames=3, width=32, height=24, supersample=1)
CUTS = [p / 10 for p in range(1, 10)]


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    """Synthetic scenes whose calibration is rewritten as the real tools print it."""
    base = tmp_path_factory.mktemp("tool_files")
    enerf = write_scene("enerf", base / "enerf", TINY)
    truth = read_calibration(enerf / "intri.yml", enerf / "extri.yml")
    write_tool_calibration(enerf, truth, "easymocap", EASYMOCAP)
    easyvolcap = write_scene("easyvolcap", base / "easyvolcap", TINY)
    write_tool_calibration(
        easyvolcap, read_calibration(easyvolcap / "intri.yml", easyvolcap / "extri.yml"), "easyvolcap", EASYVOLCAP
    )
    selfcap = write_scene("selfcap", base / "selfcap", SynthesisConfig(**{**TINY.__dict__, "max_sync_offset": 0.004}))
    optimized = selfcap / "optimized"
    write_tool_calibration(
        optimized, read_calibration(optimized / "intri.yml", optimized / "extri.yml"), "easyvolcap", EASYVOLCAP
    )
    return {
        "enerf": enerf,
        "easyvolcap": easyvolcap,
        "selfcap": selfcap,
        "neural3dv": write_scene("neural3dv", base / "neural3dv", TINY),
        "iphone": write_monocular_scene(base / "iphone", MonocularConfig(num_frames=3, width=32, height=24)),
        "truth": truth,
    }


PARSERS = {
    "enerf": lambda root: ENeRFOutdoorDataParserConfig(data=root, test_cameras=("01",)),
    "easyvolcap": lambda root: EasyVolcapDataParserConfig(data=root),
    "selfcap": lambda root: SelfCapDataParserConfig(data=root, test_cameras=("0001",), frame_count=None),
    "neural3dv": lambda root: Neural3DVDataParserConfig(data=root, test_cameras=("cam01",), frame_count=None),
}


def parse(fmt: str, root: Path) -> None:
    if fmt.startswith("iphone"):  # DyCheck's camera/*.json, or the refined COLMAP model
        cameras = "refined" if fmt == "iphone-colmap" else "original"
        for split in ("train", "val"):
            IPhoneDataParserConfig(data=root, cameras=cameras).setup().get_dataparser_outputs(split)
        return
    parser = PARSERS[fmt](root).setup()
    parser.get_dataparser_outputs("train")


def test_easymocap_files_are_read_as_easymocap_reads_them(scenes, capsys):
    root, truth = scenes["enerf"], scenes["truth"]
    cams = read_calibration(root / "intri.yml", root / "extri.yml")
    for name, cam in cams.items():
        rvec = np.round(cv2.Rodrigues(truth[name].w2c[:3, :3])[0], 6)  # R_ as printed wins over the 3-decimal Rot_
        np.testing.assert_allclose(cam.w2c[:3, :3], cv2.Rodrigues(rvec)[0], atol=1e-12)
        np.testing.assert_allclose(cam.w2c, truth[name].w2c, atol=1e-5)
        np.testing.assert_allclose(cam.K, truth[name].K, atol=1e-6)
        assert cam.width is None and cam.height is None  # EasyMocap's calibration records no image size
    assert "Rot_" not in capsys.readouterr().out  # Rot_ agrees with R_ to print precision: nothing to say
    parse("enerf", root)


def test_rotation_matrix_only_printed_to_three_decimals(scenes, tmp_path, capsys):
    truth = scenes["truth"]
    write_tool_calibration(tmp_path, truth, "easymocap", Printing(rot_decimals=3, extri_keys=("Rot_", "T_")))
    cams = read_calibration(tmp_path / "intri.yml", tmp_path / "extri.yml")
    for name, cam in cams.items():
        rot = cam.w2c[:3, :3]
        np.testing.assert_allclose(rot @ rot.T, np.eye(3), atol=1e-12)
        assert np.linalg.det(rot) > 0
        np.testing.assert_allclose(rot, truth[name].w2c[:3, :3], atol=2e-3)
    out = " ".join(capsys.readouterr().out.split())  # the console wraps long lines
    assert re.search(r"extri\.yml: Rot_ of cameras \['00', '01', '02'\] is up to \d\.\de-04 from orthonormal", out)


def test_rotation_matrix_that_is_no_rotation_is_refused(scenes, tmp_path):
    truth = dict(scenes["truth"])
    truth["01"] = Calibration(truth["01"].K, truth["01"].distortion, truth["01"].w2c.copy(), 32, 24)
    truth["01"].w2c[:3, 0] *= -1  # a reflection: orthonormal but det −1
    write_tool_calibration(tmp_path, truth, "easymocap", Printing(extri_keys=("Rot_", "T_")))
    with pytest.raises(DatasetFormatError, match=r"extri\.yml: 'Rot_01' is not a rotation matrix .*det = -1"):
        read_calibration(tmp_path / "intri.yml", tmp_path / "extri.yml")


def test_rodrigues_vector_wins_over_a_disagreeing_rotation_matrix(scenes, tmp_path, capsys):
    truth = scenes["truth"]
    write_tool_calibration(tmp_path, truth, "easyvolcap", EASYVOLCAP)
    extri = tmp_path / "extri.yml"
    text = extri.read_text()
    rot = truth["02"].w2c[:3, :3]
    printed = ", ".join(f"{v:.10f}" for v in rot.reshape(-1))
    swapped = ", ".join(f"{v:.10f}" for v in rot[[1, 0, 2]].reshape(-1))
    extri.write_text(text.replace(printed, swapped))
    cams = read_calibration(tmp_path / "intri.yml", extri)
    np.testing.assert_allclose(cams["02"].w2c[:3, :3], rot, atol=1e-9)
    out = " ".join(capsys.readouterr().out.split())
    assert re.search(r"Rot_ of cameras \['02'\] differs from the rotation of their R_ .* using R_", out)


def test_four_distortion_coefficients_and_unrecorded_image_size(scenes, tmp_path):
    K = np.array([[30.0, 0.0, 16.0], [0.0, 30.0, 12.0], [0.0, 0.0, 1.0]])
    lines = ["names:", '  - "00"', *matrix_lines("K_00", K, 1)]
    lines += matrix_lines("dist_00", np.array([[0.1, -0.01, 0.001, 0.002]]), 3) + ["H_00: -1", "W_00: -1"]
    write_tool_calibration(tmp_path, {"00": scenes["truth"]["00"]}, "easymocap", EASYMOCAP)
    write_text(tmp_path / "intri.yml", lines)
    cam = read_calibration(tmp_path / "intri.yml", tmp_path / "extri.yml")["00"]
    np.testing.assert_array_equal(cam.distortion, [0.1, -0.01, 0.001, 0.002, 0.0])
    assert cam.width is None and cam.height is None


def calibration_files(fmt: str, root: Path):
    """Every calibration / metadata file the parser of ``fmt`` reads, relative to ``root``."""
    if fmt in ("enerf", "easyvolcap"):
        return ["intri.yml", "extri.yml"]
    if fmt == "selfcap":
        return ["optimized/intri.yml", "optimized/extri.yml", "optimized/sync.json"]
    if fmt == "neural3dv":
        return ["poses_bounds.npy"]
    if fmt == "iphone-colmap":
        return sorted(str(f.relative_to(root)) for f in IPhoneLayout(root).colmap_dir.glob("*.bin"))
    layout = IPhoneLayout(root)
    files = [
        layout.scene_file,
        layout.dataset_file,
        layout.metadata_file,
        layout.extra_file,
        layout.split_file("train"),
        layout.split_file("val"),
        layout.camera_file("0_00001"),
        layout.metric_scale_file,
    ]
    return [str(f.relative_to(root)) for f in files]


@pytest.mark.parametrize("fmt", ["enerf", "easyvolcap", "selfcap", "neural3dv", "iphone", "iphone-colmap"])
def test_every_calibration_file_cut_short_is_a_format_error(scenes, tmp_path, fmt):
    root = Path(shutil.copytree(scenes[fmt.split("-")[0]], tmp_path / fmt))
    parse(fmt, root)  # the whole files parse
    for relative in calibration_files(fmt, root):
        path = root / relative
        whole = path.read_bytes()
        for cut in CUTS:
            path.write_bytes(whole[: int(len(whole) * cut)])
            with pytest.raises(DatasetFormatError) as err:
                parse(fmt, root)
            assert err.value.path == path, f"{relative} cut at {cut:.0%}: {err.value}"
        path.write_bytes(whole)

"""Bad input: each case raises DatasetFormatError naming the file and the problem, and an
interrupted frame-cache extraction never leaves a cache that is later trusted."""

import json
import re
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from dataparsers import frame_cache, multiview_base
from dataparsers.easyvolcap import ENeRFOutdoorDataParserConfig
from dataparsers.easyvolcap_calibration import Calibration, read_calibration, write_calibration
from dataparsers.errors import DatasetFormatError
from dataparsers.multiview import MultiViewAutoDataParserConfig, detect_layout
from dataparsers.neural3dv import Neural3DVDataParserConfig
from dataparsers.selfcap import SelfCapDataParserConfig
from dataparsers.synthetic.writers import SynthesisConfig, encode_mp4, write_scene

TINY = SynthesisConfig(num_cameras=4, num_frames=6, width=32, height=24, supersample=1)


@pytest.fixture(scope="module")
def originals(tmp_path_factory):
    base = tmp_path_factory.mktemp("originals")
    return {fmt: write_scene(fmt, base / fmt, TINY) for fmt in ("neural3dv", "enerf", "selfcap")}


@pytest.fixture
def scene(originals, tmp_path):
    """A fresh copy of an original scene to break: ``scene("enerf")``."""

    def copy(fmt: str) -> Path:
        return Path(shutil.copytree(originals[fmt], tmp_path / fmt))

    return copy


def parse(config) -> None:
    parser = config.setup()
    parser.get_dataparser_outputs("train")
    parser.get_dataparser_outputs("test")


def raises(path: Path, problem: str):
    """DatasetFormatError whose message starts with ``path`` and mentions ``problem``."""
    return pytest.raises(DatasetFormatError, match=re.escape(str(path)) + ".*" + problem)


def enerf(root: Path) -> ENeRFOutdoorDataParserConfig:
    return ENeRFOutdoorDataParserConfig(data=root, test_cameras=("01",))


def rewrite_calibration(intri: Path, extri: Path, edit) -> None:
    cams = read_calibration(intri, extri)
    edit(cams)
    write_calibration(intri, extri, cams)


# ----- folder layout -----
def test_missing_or_unknown_folder_layout(tmp_path):
    with raises(tmp_path / "nope", "is not a folder"):
        detect_layout(tmp_path / "nope")
    (tmp_path / "notes.txt").write_text("hello")
    with raises(tmp_path, "matches no multi-view layout"):
        MultiViewAutoDataParserConfig(data=tmp_path).setup()
    with raises(tmp_path, "has no camXX.mp4 videos"):
        parse(Neural3DVDataParserConfig(data=tmp_path))
    with raises(tmp_path / "images", "is missing"):
        parse(enerf(tmp_path))
    with raises(tmp_path / "videos", "is missing"):
        parse(SelfCapDataParserConfig(data=tmp_path))


def test_unknown_test_or_excluded_camera(scene):
    root = scene("neural3dv")
    with raises(root, r"test_cameras \['cam09'\] are not among"):
        parse(Neural3DVDataParserConfig(data=root, test_cameras=("cam09",)))
    with raises(root, r"exclude_cameras \['cam7'\]"):
        parse(Neural3DVDataParserConfig(data=root, exclude_cameras=("cam7",)))


# ----- Neural3DV -----
def test_poses_bounds_missing_or_of_the_wrong_shape(scene):
    root = scene("neural3dv")
    path = root / "poses_bounds.npy"
    arr = np.load(path)
    for bad in (arr[:, :15], arr[:3], arr.reshape(-1)):
        np.save(path, bad)
        with raises(path, re.escape(f"has shape {bad.shape}, expected (4, 17)")):
            parse(Neural3DVDataParserConfig(data=root))
    path.write_bytes(b"not numpy")
    with raises(path, "is not a readable .npy array"):
        parse(Neural3DVDataParserConfig(data=root))
    path.unlink()
    with raises(path, "is missing"):
        parse(Neural3DVDataParserConfig(data=root))


def test_poses_bounds_with_non_finite_values_or_a_bad_rotation(scene):
    root = scene("neural3dv")
    path = root / "poses_bounds.npy"
    arr = np.load(path)
    broken = arr.copy()
    broken[1, 3] = np.inf
    np.save(path, broken)
    with raises(path, "non-finite values"):
        parse(Neural3DVDataParserConfig(data=root))
    broken = arr.copy()
    broken[2, 0] *= 2.0
    np.save(path, broken)
    with raises(path, "rotation of row 2 is not a rotation matrix"):
        parse(Neural3DVDataParserConfig(data=root))


def test_video_that_fails_to_decode(scene):
    root = scene("neural3dv")
    (root / "cam01.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    with raises(root / "cam01.mp4", "cannot be decoded"):
        parse(Neural3DVDataParserConfig(data=root))
    assert not list((root / "splat4d_cache").glob("cam01*"))


def test_video_with_fewer_frames_than_the_others(scene):
    root = scene("neural3dv")
    encode_mp4(root / "cam02.mp4", [np.zeros((24, 32, 3), dtype=np.uint8)] * 4, 30.0, 10)
    with raises(root / "cam02.mp4", "has 4 frames in the selected range but cam00.mp4 has 6"):
        parse(Neural3DVDataParserConfig(data=root))


def test_frame_count_beyond_the_videos_is_reported_once(scene, capsys):
    root = scene("neural3dv")
    parse(Neural3DVDataParserConfig(data=root, frame_start=2, frame_count=300))
    out = " ".join(capsys.readouterr().out.split())  # the console wraps long lines
    assert (
        out.count("frame_count 300 asks for frames 2–301 but the cameras have only 4 from frame 2: using those 4") == 1
    )
    parse(Neural3DVDataParserConfig(data=root, frame_start=2, frame_count=4))
    assert "frame_count" not in capsys.readouterr().out


# ----- EasyVolcap calibration and image folders -----
def test_cameras_in_extri_missing_from_intri(scene):
    root = scene("enerf")
    cams = read_calibration(root / "intri.yml", root / "extri.yml")
    del cams["03"]
    write_calibration(root / "intri.yml", root / "unused_extri.yml", cams)
    with raises(root / "intri.yml", r"cameras \['03'\] of extri.yml are missing"):
        parse(enerf(root))


def test_image_folder_without_calibration(scene):
    root = scene("enerf")
    shutil.copytree(root / "images" / "03", root / "images" / "04")
    with raises(root / "extri.yml", r"has no camera \['04'\]"):
        parse(enerf(root))


def test_image_folders_with_unequal_frame_counts(scene):
    root = scene("enerf")
    (root / "images" / "02" / "000005.jpg").unlink()
    with raises(root / "images" / "02", "has 5 frames in the selected range but 00 has 6"):
        parse(enerf(root))
    shutil.copy(root / "images" / "02" / "000004.jpg", root / "images" / "02" / "000009.jpg")
    with raises(root / "images" / "02", "has frame 000009.jpg where images/00 has 000005.jpg"):
        parse(enerf(root))


@pytest.mark.parametrize(
    "file, edit, problem",
    [
        ("intri.yml", lambda c: c["01"].K.__setitem__((0, 0), np.nan), r"'K_01' has non-finite values"),
        ("intri.yml", lambda c: c["02"].distortion.__setitem__(0, np.inf), r"'D_02' has non-finite values"),
        ("extri.yml", lambda c: c["03"].w2c.__setitem__((1, 3), np.nan), r"'T_03' has non-finite values"),
    ],
)
def test_non_finite_calibration_values(scene, file, edit, problem):
    root = scene("enerf")
    rewrite_calibration(root / "intri.yml", root / "extri.yml", edit)
    with raises(root / file, problem):
        parse(enerf(root))


def write_extri(path: Path, cams, keys=("R_", "Rot_", "T_"), skip=()) -> None:
    """extri.yml with the given keys per camera (R_: Rodrigues, Rot_: matrix), leaving out the (key, camera) ``skip``."""
    fs = cv2.FileStorage(str(path), cv2.FILE_STORAGE_WRITE)
    fs.startWriteStruct("names", cv2.FileNode_SEQ)
    for name in cams:
        fs.write("", name)
    fs.endWriteStruct()
    for name, cam in cams.items():
        values = {"R_": cv2.Rodrigues(cam.w2c[:3, :3])[0], "Rot_": cam.w2c[:3, :3], "T_": cam.w2c[:3, 3:4]}
        for key in keys:
            if (key, name) not in skip:
                fs.write(f"{key}{name}", values[key])
    fs.release()


def test_calibration_with_a_bad_rotation_or_missing_key(scene):
    root = scene("enerf")
    intri, extri = root / "intri.yml", root / "extri.yml"
    cams = read_calibration(intri, extri)
    scaled = {n: Calibration(c.K, c.distortion, c.w2c.copy()) for n, c in cams.items()}
    scaled["01"].w2c[:3, :3] *= 1.1
    write_extri(extri, scaled, keys=("Rot_", "T_"))  # no R_: Rot_ is used, and is no rotation
    with raises(extri, r"'Rot_01' is not a rotation matrix \(max \|R·Rᵀ − I\| = 0.21"):
        parse(enerf(root))
    write_extri(extri, cams, keys=("R_", "T_"), skip={("T_", "02")})
    with raises(extri, "has no 'T_02'"):
        parse(enerf(root))
    write_extri(extri, cams, keys=("T_",))
    with raises(extri, "has neither 'R_00' \\(Rodrigues vector\\) nor 'Rot_00'"):
        parse(enerf(root))
    intri.write_text("%YAML:1.0\n---\nnames: [ 00\n")
    with raises(intri, "OpenCV FileStorage"):
        parse(enerf(root))


def test_selfcap_sync_file_with_a_non_finite_offset(scene):
    root = scene("selfcap")
    (root / "optimized" / "sync.json").write_text(json.dumps({"0000": 0.0, "0002": float("nan")}))
    with raises(root / "optimized" / "sync.json", "offset of camera 0002 is nan"):
        parse(SelfCapDataParserConfig(data=root, test_cameras=("0001",)))


def test_image_size_disagreeing_with_calibration(scene):
    root = scene("enerf")
    rewrite_calibration(root / "intri.yml", root / "extri.yml", lambda c: setattr(c["02"], "width", 64))
    with raises(root / "intri.yml", "says camera 02 is 64×24"):
        parse(enerf(root))


# ----- frame cache -----
def test_interrupted_extraction_leaves_no_trusted_cache(scene, monkeypatch):
    root = scene("neural3dv")
    real_decode = multiview_base.decode_frames

    def interrupted(path, start, count):
        for n, item in enumerate(real_decode(path, start, count)):
            if path.name == "cam02.mp4" and n == 3:
                raise KeyboardInterrupt
            yield item

    monkeypatch.setattr(multiview_base, "decode_frames", interrupted)
    with pytest.raises(KeyboardInterrupt):
        parse(Neural3DVDataParserConfig(data=root))
    cache = root / "splat4d_cache"
    assert sorted(p.name.split("-")[0] for p in cache.iterdir()) == ["cam00", "cam01"]  # complete ones only
    monkeypatch.setattr(multiview_base, "decode_frames", real_decode)
    parser = Neural3DVDataParserConfig(data=root).setup()
    outputs = parser.get_dataparser_outputs("train")
    assert len(outputs.image_filenames) == 3 * 6 and all(p.is_file() for p in outputs.image_filenames)


def test_cache_is_rebuilt_when_incomplete_and_abandoned_partials_are_removed(tmp_path):
    frames = [(n, np.full((4, 6, 3), n, dtype=np.uint8)) for n in range(3)]
    key = {"source": "test"}
    files = frame_cache.cached_frames(tmp_path, "cam", key, iter(frames), "png", "test", 3)
    folder = files[0].parent
    abandoned = folder.with_name(f"{folder.name}.partial-999999999")  # no such process
    abandoned.mkdir()
    files[1].unlink()  # e.g. deleted by hand: the cache is no longer complete
    rebuilt = frame_cache.cached_frames(tmp_path, "cam", key, iter(frames), "png", "test", 3)
    assert rebuilt == files and all(f.is_file() for f in rebuilt)
    assert not abandoned.exists()

    def never_read():
        raise AssertionError("a trusted cache must not decode again")
        yield

    assert frame_cache.cached_frames(tmp_path, "cam", key, never_read(), "png", "test", 3) == files

"""benchmarks/gpu_check.py (make gpu-check): refuses cleanly without CUDA; its dry run (--device
cpu --tiny) goes through every step that does not need CUDA and reports all rows."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"


@pytest.fixture(scope="module")
def gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(torch.cuda.is_available(), reason="the refusal is for machines without CUDA")
def test_refuses_without_cuda(gpu_check, tmp_path, capsys):
    assert gpu_check.GpuCheck(out_dir=tmp_path).main() == 2
    message = capsys.readouterr().err
    assert "needs an NVIDIA GPU" in message and "make setup" in message and "--device cpu --tiny" in message
    assert not any(tmp_path.iterdir())  # refused before writing anything


def test_dry_run_reports_every_row(gpu_check, tmp_path, capsys):
    out = tmp_path / "report.json"
    assert gpu_check.GpuCheck(device="cpu", tiny=True, steps=3, out_dir=tmp_path, json=out).main() == 0
    report = json.loads(out.read_text())
    assert [r["method"] for r in report["runs"]] == ["sharptime", "splatfacto", "shapeofmotion"]
    for run in report["runs"]:
        assert run["steps"] == 3 and run["ms_per_step"] > 0 and run["render_fps"] > 0 and run["gaussians"] > 0
        assert run["peak_memory_mib"] is None
    assert [r["render_size"] for r in report["runs"]] == ["64×48", "64×48", "48×36"]
    assert report["step_ratio"] > 0
    assert report["agreement"]["against"] == "reference"
    assert report["agreement"]["max_abs_image"] < 1e-4 and report["agreement"]["means2d_grad_rel"] < 1e-3
    printed = capsys.readouterr().out
    assert "| sharptime | multiview_2x2_64x48 |" in printed and "SharpTimeGS / splatfacto step time" in printed

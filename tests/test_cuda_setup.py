"""make setup's CUDA decisions on canned nvcc / nvidia-smi output, the CPU path of its two stages,
and the clear error of a gsplat render whose CUDA extension cannot load."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from splat4d import cuda_setup, rasterize
from splat4d.cuda_setup import CudaVersion, GpuInfo, SetupError

ROOT = Path(__file__).resolve().parents[1]

NVCC_12_4 = """nvcc: NVIDIA (R) Cuda compiler driver
Copyright (c) 2005-2024 NVIDIA Corporation
Built on Thu_Mar_28_02:18:24_PDT_2024
Cuda compilation tools, release 12.4, V12.4.131
Build cuda_12.4.r12.4/compiler.34097967_0
"""
NVCC_11_8 = "Cuda compilation tools, release 11.8, V11.8.89\nBuild cuda_11.8.r11.8/compiler.31833905_0\n"
SMI = """Tue Dec  1 10:00:00 2026
+-----------------------------------------------------------------------------------------+
| NVIDIA-SMI 550.54.15              Driver Version: 550.54.15      CUDA Version: 12.4     |
|-----------------------------------------+------------------------+----------------------+
| GPU  Name                 Persistence-M | Bus-Id          Disp.A | Volatile Uncorr. ECC |
"""
SMI_LIST = (
    "GPU 0: NVIDIA H200 (UUID: GPU-0b5a0d3c-1111-2222-3333-444455556666)\n"
    "GPU 1: NVIDIA H200 (UUID: GPU-0b5a0d3c-1111-2222-3333-444455556667)\n"
)
V = CudaVersion.parse


def test_parse_nvcc_version():
    assert cuda_setup.parse_nvcc_version(NVCC_12_4) == CudaVersion(12, 4)
    assert cuda_setup.parse_nvcc_version(NVCC_11_8) == CudaVersion(11, 8)
    with pytest.raises(SetupError, match="cannot read the CUDA version"):
        cuda_setup.parse_nvcc_version("bash: nvcc: command not found")


def test_parse_nvidia_smi():
    gpu = cuda_setup.parse_nvidia_smi(SMI, SMI_LIST)
    assert gpu == GpuInfo(names=("NVIDIA H200", "NVIDIA H200"), driver="550.54.15", driver_cuda=CudaVersion(12, 4))
    assert "NVIDIA H200" in gpu.describe() and "550.54.15" in gpu.describe()
    assert cuda_setup.parse_nvidia_smi("NVIDIA-SMI has failed") == GpuInfo((), None, None)


def test_torch_release_and_tags():
    assert cuda_setup.torch_release("torch==2.5.1 torchvision==0.20.1") == "2.5"
    assert cuda_setup.torch_release("torchvision==0.20.1 torch==2.14.1") == "2.14"
    assert cuda_setup.torch_release("torch>=2.1") is None
    assert CudaVersion(12, 4).tag == "cu124" and str(V("13.0")) == "13.0"
    assert cuda_setup.pip_torch_args(V("12.1")) == ["--index-url", "https://download.pytorch.org/whl/cu121"]


@pytest.mark.parametrize(
    "release, nvcc, driver, expected",
    [
        ("2.5", "12.4", "12.4", "12.4"),  # exact match
        ("2.5", "12.6", "12.8", "12.4"),  # newest build not newer than nvcc
        ("2.5", "12.4", "12.2", "12.1"),  # the driver caps it
        ("2.5", "11.8", "12.4", "11.8"),  # nvcc's major version wins over the newest build
        ("2.8", "12.4", "12.9", "12.6"),  # no build ≤ nvcc with its major: the oldest newer one
        ("2.14", "12.8", "13.0", "12.8"),  # a release not in the table: nvcc's own version
        ("2.5", "12.4", None, "12.4"),  # no nvidia-smi: no driver cap
    ],
)
def test_choose_cuda_build(release, nvcc, driver, expected):
    assert cuda_setup.choose_cuda_build(release, V(nvcc), V(driver) if driver else None) == V(expected)


def test_choose_cuda_build_refuses_with_a_fix():
    with pytest.raises(SetupError, match=r"torch 2\.5 is built for CUDA 11\.8, 12\.1, 12\.4; none has nvcc's major"):
        cuda_setup.choose_cuda_build("2.5", V("13.0"), V("13.0"))
    with pytest.raises(SetupError, match=r"driver supports CUDA up to 11\.8 but nvcc is CUDA 12\.4"):
        cuda_setup.choose_cuda_build("2.5", V("12.4"), V("11.8"))
    with pytest.raises(SetupError, match=r"driver supports CUDA up to 12\.4 but nvcc is CUDA 12\.8"):
        cuda_setup.choose_cuda_build("2.14", V("12.8"), V("12.4"))  # unknown release: nvcc's build needs the driver


def test_messages_name_the_fix():
    gpu = cuda_setup.parse_nvidia_smi(SMI, SMI_LIST)
    missing = cuda_setup.missing_nvcc_message(gpu, None)
    assert "no CUDA toolkit (nvcc)" in missing and "cuda-toolkit=12.4" in missing and "make setup" in missing
    assert "Install the CUDA toolkit 12.4" in missing and "NVIDIA's `cuda-toolkit-12-4`" in missing
    assert "SPLAT4D_FORCE_CPU_SETUP=1" in missing
    off_path = cuda_setup.missing_nvcc_message(gpu, "/usr/local/cuda/bin/nvcc")
    assert "not on PATH" in off_path and "export PATH=/usr/local/cuda/bin:$PATH" in off_path
    mismatch = cuda_setup.major_mismatch_message("2.5.1+cu124", "12.4", V("11.8"))
    assert "built for CUDA 12.4 but nvcc is CUDA 11.8" in mismatch and "TORCH_CUDA_TAG=cu118" in mismatch
    assert "Install the CUDA toolkit 12.4" in mismatch
    too_old = cuda_setup.driver_too_old_message(V("11.8"), V("12.4"))
    assert "update the driver, or use an older toolkit. Install the CUDA toolkit 11.8" in too_old


def test_detection_and_cpu_stages_do_nothing_without_a_gpu(monkeypatch):
    monkeypatch.setattr(
        cuda_setup.shutil, "which", lambda name: "/usr/bin/nvidia-smi" if name == "nvidia-smi" else None
    )
    monkeypatch.delenv(cuda_setup.FORCE_CPU_ENV, raising=False)
    assert cuda_setup.has_nvidia_gpu()
    monkeypatch.setenv(cuda_setup.FORCE_CPU_ENV, "1")
    assert not cuda_setup.has_nvidia_gpu()
    assert cuda_setup.torch_index_args("torch==2.5.1", None) == []  # the CPU install, unchanged
    cuda_setup.finish()  # nothing to do


def test_gpu_without_nvcc_fails_early(monkeypatch):
    monkeypatch.delenv(cuda_setup.FORCE_CPU_ENV, raising=False)
    monkeypatch.setattr(cuda_setup, "has_nvidia_gpu", lambda: True)
    monkeypatch.setattr(cuda_setup, "probe_gpu", lambda: cuda_setup.parse_nvidia_smi(SMI, SMI_LIST))
    monkeypatch.setattr(cuda_setup, "find_toolkit", lambda: cuda_setup.Toolkit(None, False, None))
    with pytest.raises(SetupError, match="no CUDA toolkit"):
        cuda_setup.torch_index_args("torch==2.5.1 torchvision==0.20.1", None)
    monkeypatch.setattr(
        cuda_setup, "find_toolkit", lambda: cuda_setup.Toolkit("/usr/local/cuda/bin/nvcc", True, V("12.4"))
    )
    assert cuda_setup.torch_index_args("torch==2.5.1 torchvision==0.20.1", None) == [
        "--index-url",
        "https://download.pytorch.org/whl/cu124",
    ]
    assert cuda_setup.torch_index_args("torch==2.5.1", "cu121")[-1].endswith("/cu121")
    with pytest.raises(SetupError, match="TORCH_CUDA_TAG"):
        cuda_setup.torch_index_args("torch==2.5.1", "12.1")


def test_torch_index_stage_runs_as_a_file_on_this_machine():
    """How the Makefile calls it, before torch is installed: prints nothing on a CPU machine."""
    env = {"PATH": "/usr/bin:/bin", cuda_setup.FORCE_CPU_ENV: "1"}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "splat4d/cuda_setup.py"), "torch-index", "torch==2.5.1"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ""


@pytest.mark.skipif(torch.cuda.is_available(), reason="the CUDA tests render through gsplat")
def test_gsplat_render_without_nvcc_names_it(monkeypatch):
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    args = (
        torch.zeros(1, 3),
        torch.tensor([[1.0, 0, 0, 0]]),
        torch.ones(1, 3),
        torch.ones(1),
        torch.ones(1, 3),
        torch.eye(4)[None],
        torch.eye(3)[None],
        8,
        8,
    )
    if cuda_setup.shutil.which("nvcc") is None:
        with pytest.raises(RuntimeError, match="nvcc.*make setup"):
            rasterize(*args, backend="gsplat")
    import gsplat.cuda

    monkeypatch.delattr(gsplat.cuda, "_backend", raising=False)
    monkeypatch.setitem(sys.modules, "gsplat.cuda._backend", None)  # an import that fails (a failed build)
    with pytest.raises(RuntimeError, match="failed to build or load.*make setup"):
        rasterize(*args, backend="gsplat")

"""``make setup`` on a CUDA machine: pick the torch build, check the CUDA toolkit, switch
pycolmap to its CUDA build and compile gsplat's extension once, at set-up.

Two stages, both called by the Makefile's setup target:

    python splat4d/cuda_setup.py torch-index "torch==2.5.1 torchvision==0.20.1" [--cuda-tag cu124]
        prints the extra pip arguments for installing torch (nothing on a machine without an
        NVIDIA GPU: the CPU install is left exactly as it was), or exits 1 with a message that
        says what is missing (nvcc, a driver or toolkit version that no torch build matches)
        and how to fix it. Standard library only: it runs before torch is installed (as a file,
        not ``-m``, because importing the splat4d package needs torch).
    python -m splat4d.cuda_setup finish
        after the install, on a GPU machine only: checks that torch sees the GPU and that its
        CUDA major version is nvcc's, replaces pycolmap by pycolmap-cuda12 of the same version
        (GPU SIFT extraction and matching in the initializations) and builds gsplat's
        JIT-compiled CUDA extension, so that the first ``ns-train`` step does not.

A machine has an NVIDIA GPU when ``nvidia-smi`` is on PATH or a /dev/nvidia<N> device exists;
``SPLAT4D_FORCE_CPU_SETUP=1`` treats any machine as one without.
"""

from __future__ import annotations

import argparse
import glob
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

TORCH_INDEX = "https://download.pytorch.org/whl"
FORCE_CPU_ENV = "SPLAT4D_FORCE_CPU_SETUP"

# CUDA builds PyTorch publishes for each minor release (its wheel index, cuXYZ). For a release
# not listed here the build matching nvcc is tried; ``--cuda-tag`` (make TORCH_CUDA_TAG=cu128) picks one.
TORCH_CUDA_BUILDS: Dict[str, Tuple[str, ...]] = {
    "2.1": ("11.8", "12.1"),
    "2.2": ("11.8", "12.1"),
    "2.3": ("11.8", "12.1"),
    "2.4": ("11.8", "12.1", "12.4"),
    "2.5": ("11.8", "12.1", "12.4"),
    "2.6": ("11.8", "12.4", "12.6"),
    "2.7": ("11.8", "12.6", "12.8"),
    "2.8": ("12.6", "12.8", "12.9"),
    "2.9": ("12.6", "12.8", "13.0"),
}


class SetupError(RuntimeError):
    """Set-up cannot go on; the message says what is missing and how to fix it."""


@dataclass(frozen=True, order=True)
class CudaVersion:
    major: int
    minor: int

    @classmethod
    def parse(cls, text: str) -> "CudaVersion":
        match = re.fullmatch(r"\s*(\d+)\.(\d+)(?:\.\d+)*\s*", text)
        if match is None:
            raise ValueError(f"not a CUDA version: {text!r}")
        return cls(int(match.group(1)), int(match.group(2)))

    @property
    def tag(self) -> str:
        """PyTorch's wheel tag, e.g. cu124."""
        return f"cu{self.major}{self.minor}"

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}"


@dataclass(frozen=True)
class GpuInfo:
    names: Tuple[str, ...]  # empty when nvidia-smi could not be run
    driver: Optional[str]  # driver version
    driver_cuda: Optional[CudaVersion]  # newest CUDA the driver supports

    def describe(self) -> str:
        what = ", ".join(self.names) if self.names else "an NVIDIA GPU"
        if self.driver is not None:
            what += f" (driver {self.driver}, CUDA ≤ {self.driver_cuda})"
        return what


@dataclass(frozen=True)
class Toolkit:
    nvcc: Optional[str]  # path of nvcc, None when not found anywhere
    on_path: bool  # gsplat runs plain ``nvcc``: it must be on PATH
    version: Optional[CudaVersion]


# ----- parsing (pure) -----
def parse_nvcc_version(text: str) -> CudaVersion:
    """The release in ``nvcc --version``'s output ("Cuda compilation tools, release 12.4, V12.4.131")."""
    match = re.search(r"release (\d+)\.(\d+)", text)
    if match is None:
        raise SetupError(f"cannot read the CUDA version from `nvcc --version`:\n{text.strip()}")
    return CudaVersion(int(match.group(1)), int(match.group(2)))


def parse_nvidia_smi(summary: str, listing: str = "") -> GpuInfo:
    """``nvidia-smi``'s table header (driver and CUDA version) and ``nvidia-smi -L``'s lines."""
    driver = re.search(r"Driver Version:\s*([0-9.]+)", summary)
    cuda = re.search(r"CUDA Version:\s*(\d+)\.(\d+)", summary)
    names = tuple(m.group(1).strip() for m in re.finditer(r"^GPU \d+:\s*(.+?)\s*(?:\(UUID:.*)?$", listing, re.M))
    return GpuInfo(
        names=names,
        driver=driver.group(1) if driver else None,
        driver_cuda=CudaVersion(int(cuda.group(1)), int(cuda.group(2))) if cuda else None,
    )


def torch_release(spec: str) -> Optional[str]:
    """ "2.5" from a pip spec such as "torch==2.5.1 torchvision==0.20.1"; None unless torch is pinned."""
    match = re.search(r"(?:^|\s)torch==(\d+)\.(\d+)", spec)
    return f"{match.group(1)}.{match.group(2)}" if match else None


# ----- decisions (pure) -----
def choose_cuda_build(release: Optional[str], nvcc: CudaVersion, driver_cuda: Optional[CudaVersion]) -> CudaVersion:
    """The torch CUDA build for this toolkit and driver: its major version must be nvcc's (gsplat's
    kernels are compiled by nvcc against torch's headers) and the driver must support it. Among
    the builds of a known release, the newest one not newer than nvcc, else the oldest newer one."""
    if driver_cuda is not None and driver_cuda.major < nvcc.major:
        raise SetupError(driver_too_old_message(driver_cuda, nvcc))
    known = TORCH_CUDA_BUILDS.get(release or "")
    if known is None:
        if driver_cuda is not None and driver_cuda < nvcc:
            raise SetupError(driver_too_old_message(driver_cuda, nvcc))
        return nvcc
    builds = [CudaVersion.parse(v) for v in known]
    usable = [b for b in builds if b.major == nvcc.major and (driver_cuda is None or b <= driver_cuda)]
    if not usable:
        raise SetupError(no_matching_build_message(release, builds, nvcc, driver_cuda))
    older = [b for b in usable if b <= nvcc]
    return max(older) if older else min(usable)


def pip_torch_args(build: CudaVersion) -> List[str]:
    return ["--index-url", f"{TORCH_INDEX}/{build.tag}"]


# ----- messages (pure) -----
FORCE_CPU_HINT = f"({FORCE_CPU_ENV}=1 make setup installs the CPU-only set-up instead.)"


def toolkit_install_hint(cuda: Optional[CudaVersion]) -> str:
    version = str(cuda) if cuda is not None else "12.x"
    return (
        f"Install the CUDA toolkit {version} (e.g. `conda install -c nvidia cuda-toolkit={version}`, or "
        f"NVIDIA's `cuda-toolkit-{version.replace('.', '-')}` package)"
    )


def missing_nvcc_message(gpu: GpuInfo, off_path: Optional[str]) -> str:
    head = f"{gpu.describe()} found, but "
    if off_path is not None:
        folder = os.path.dirname(off_path)
        return (
            head + f"nvcc is not on PATH (there is one at {off_path}); gsplat compiles its CUDA kernels "
            f"by running `nvcc`. Run `export PATH={folder}:$PATH` and `make setup` again. {FORCE_CPU_HINT}"
        )
    return (
        head + "no CUDA toolkit (nvcc): gsplat, which renders on the GPU, compiles its CUDA kernels with "
        f"nvcc on first use. {toolkit_install_hint(gpu.driver_cuda)}, put its bin/ on PATH "
        f"and run `make setup` again. {FORCE_CPU_HINT}"
    )


def driver_too_old_message(driver_cuda: CudaVersion, nvcc: CudaVersion) -> str:
    return (
        f"the NVIDIA driver supports CUDA up to {driver_cuda} but nvcc is CUDA {nvcc}: update the driver, or use an older "
        f"toolkit. {toolkit_install_hint(driver_cuda)} and put it first on PATH, then run `make setup` again."
    )


def no_matching_build_message(
    release: Optional[str], builds: Sequence[CudaVersion], nvcc: CudaVersion, driver_cuda: Optional[CudaVersion]
) -> str:
    listed = ", ".join(str(b) for b in builds)
    driver = f" and a driver supporting CUDA ≤ {driver_cuda}" if driver_cuda is not None else ""
    return (
        f"torch {release} is built for CUDA {listed}; none has nvcc's major version ({nvcc}){driver}. "
        f"gsplat needs nvcc's major version to be torch's. Install a CUDA toolkit matching one of "
        f'{listed}, or choose another torch: make TORCH_SPEC="torch==... torchvision==..." setup.'
    )


def major_mismatch_message(torch_version: str, torch_cuda: str, nvcc: CudaVersion) -> str:
    hint = toolkit_install_hint(CudaVersion.parse(torch_cuda))
    return (
        f"torch {torch_version} is built for CUDA {torch_cuda} but nvcc is CUDA {nvcc}: gsplat cannot "
        f"compile its kernels when the major versions differ. {hint} "
        f"and put it first on PATH, or reinstall torch for CUDA {nvcc.major} "
        f"(rm -r .venv; make TORCH_CUDA_TAG={nvcc.tag} setup), then run `make setup` again."
    )


# ----- probing the machine -----
def has_nvidia_gpu() -> bool:
    if os.environ.get(FORCE_CPU_ENV, "") not in ("", "0"):
        return False
    return shutil.which("nvidia-smi") is not None or bool(glob.glob("/dev/nvidia[0-9]*"))


def run_text(args: Sequence[str]) -> str:
    proc = subprocess.run(list(args), capture_output=True, text=True, timeout=60)
    return proc.stdout + proc.stderr


def probe_gpu() -> GpuInfo:
    if shutil.which("nvidia-smi") is None:
        return GpuInfo(names=(), driver=None, driver_cuda=None)
    return parse_nvidia_smi(run_text(["nvidia-smi"]), run_text(["nvidia-smi", "-L"]))


def find_toolkit() -> Toolkit:
    """nvcc on PATH, else where torch looks for it (CUDA_HOME, CUDA_PATH, /usr/local/cuda)."""
    on_path = shutil.which("nvcc")
    candidates = [on_path] if on_path else []
    for root in (os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda"):
        if root:
            candidates.append(os.path.join(root, "bin", "nvcc"))
    for nvcc in candidates:
        if os.access(nvcc, os.X_OK):
            version = parse_nvcc_version(run_text([nvcc, "--version"]))
            return Toolkit(nvcc=nvcc, on_path=nvcc == on_path, version=version)
    return Toolkit(nvcc=None, on_path=False, version=None)


def checked_toolkit(gpu: GpuInfo) -> CudaVersion:
    toolkit = find_toolkit()
    if toolkit.version is None or not toolkit.on_path:
        raise SetupError(missing_nvcc_message(gpu, toolkit.nvcc))
    return toolkit.version


# ----- stages -----
def torch_index_args(spec: str, cuda_tag: Optional[str]) -> List[str]:
    """The extra pip arguments for installing ``spec`` on this machine (module docstring)."""
    if not has_nvidia_gpu():
        return []
    gpu = probe_gpu()
    nvcc = checked_toolkit(gpu)
    if cuda_tag:
        if not re.fullmatch(r"cu\d{3,}", cuda_tag):
            raise SetupError(f"TORCH_CUDA_TAG must look like cu124, got {cuda_tag!r}")
        return ["--index-url", f"{TORCH_INDEX}/{cuda_tag}"]
    release = torch_release(spec)
    build = choose_cuda_build(release, nvcc, gpu.driver_cuda)
    print(f"cuda_setup: {gpu.describe()}, nvcc {nvcc}: torch for CUDA {build}", file=sys.stderr)
    if release not in TORCH_CUDA_BUILDS:
        print(
            f"cuda_setup: torch {release or spec} is not in splat4d's table of CUDA builds; if pip finds no "
            f"{build.tag} build of it, choose one: make TORCH_CUDA_TAG=cu1XY setup",
            file=sys.stderr,
        )
    return pip_torch_args(build)


def finish() -> None:
    """After the install, on a GPU machine: check torch against nvcc, pycolmap-cuda12, build gsplat."""
    if not has_nvidia_gpu():
        return
    import torch

    gpu = probe_gpu()
    nvcc = checked_toolkit(gpu)
    if torch.version.cuda is None:
        raise SetupError(
            f"torch {torch.__version__} in .venv is a CPU build on a machine with {gpu.describe()}: "
            f"rm -r .venv and run `make setup` again (it installs a CUDA build)."
        )
    if CudaVersion.parse(torch.version.cuda).major != nvcc.major:
        raise SetupError(major_mismatch_message(torch.__version__, torch.version.cuda, nvcc))
    if not torch.cuda.is_available():
        raise SetupError(
            f"torch {torch.__version__} (CUDA {torch.version.cuda}) cannot use {gpu.describe()}: "
            f"the driver is probably older than CUDA {torch.version.cuda} needs; update it."
        )
    install_pycolmap_cuda(gpu)
    build_gsplat()


def install_pycolmap_cuda(gpu: GpuInfo) -> None:
    """Replace pycolmap by pycolmap-cuda12 of the same version (same module, CUDA SIFT)."""
    if gpu.driver_cuda is not None and gpu.driver_cuda.major < 12:
        print(f"cuda_setup: the driver supports CUDA {gpu.driver_cuda} < 12, keeping the CPU pycolmap", file=sys.stderr)
        return
    try:
        version = importlib.metadata.version("pycolmap")
    except importlib.metadata.PackageNotFoundError:
        return  # already switched (pycolmap-cuda12 provides the module)
    pip = [sys.executable, "-m", "pip", "--quiet"]
    subprocess.run([*pip, "uninstall", "--yes", "pycolmap"], check=True)
    installed = subprocess.run([*pip, "install", "--force-reinstall", "--no-deps", f"pycolmap-cuda12=={version}"])
    if installed.returncode != 0:
        subprocess.run([*pip, "install", "--no-deps", f"pycolmap=={version}"], check=True)
        print(
            f"cuda_setup: pycolmap-cuda12=={version} could not be installed; keeping the CPU pycolmap "
            "(SIFT and matching of the initializations run on the CPU)",
            file=sys.stderr,
        )
        return
    print(f"cuda_setup: pycolmap-cuda12=={version} installed", file=sys.stderr)


def build_gsplat() -> float:
    """Compile (or load) gsplat's CUDA extension and render once; returns the seconds it took."""
    from splat4d.gsplat_backend import require_gsplat_cuda

    start = time.perf_counter()
    require_gsplat_cuda()
    seconds = time.perf_counter() - start
    print(f"cuda_setup: gsplat's CUDA extension ready in {seconds:.0f} s", file=sys.stderr)
    return seconds


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    stages = parser.add_subparsers(dest="stage", required=True)
    index = stages.add_parser("torch-index", help="print the extra pip arguments for torch")
    index.add_argument("spec", help='the torch pip spec, e.g. "torch==2.5.1 torchvision==0.20.1"')
    index.add_argument("--cuda-tag", default="", help="force a PyTorch CUDA build, e.g. cu124")
    stages.add_parser("finish", help="GPU machines: check torch vs nvcc, pycolmap-cuda12, build gsplat")
    args = parser.parse_args(argv)
    try:
        if args.stage == "torch-index":
            print(" ".join(torch_index_args(args.spec, args.cuda_tag or None)))
        else:
            finish()
    except SetupError as err:
        print(f"make setup: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``make gpu-check``: is this GPU machine ready, and how fast is it? About 5 minutes on one GPU.

    .venv/bin/python benchmarks/gpu_check.py                      # on a CUDA machine
    .venv/bin/python benchmarks/gpu_check.py --json gpu.json      # also write the results
    .venv/bin/python benchmarks/gpu_check.py --device cpu --tiny  # dry run of the same code on a CPU

In order:
1. gsplat's CUDA extension: loaded (built by ``make setup``; built now if it was not), time taken;
2. ``pytest tests/test_cuda.py`` (CPU-vs-gsplat parity, both methods on CUDA): passed / failed;
3. SharpTimeGS and plain splatfacto (nerfstudio's model) trained on the same synthetic
   multi-view scene (3 cameras × 4 frames at 1352×1014, camera 00 held out, both from the same
   number of random Gaussians), and Shape of Motion on a 480×360 monocular synthetic scene, each
   for ``--steps`` steps through nerfstudio's trainer; per method: ms per step (training loop
   wall time / steps, after data loading and initialization), peak GPU memory, final Gaussian
   count and rendered FPS of a training camera (eval renders, synchronized);
4. CPU backend vs gsplat on one random scene at 1352×1014: max |Δ| of the image and relative
   error of the means2d gradient.
It prints a table (and the SharpTimeGS / splatfacto step-time ratio against the 1.3× target).
Scenes are written once under ``--out-dir`` and reused.

Without CUDA it refuses (exit code 2). ``--device cpu`` runs every step that does not need CUDA
(the CUDA tests are skipped, nerfstudio's splatfacto is replaced by splat4d's DynamicSplatModel,
splatfacto's model through our rasterizer, and the agreement compares our compiled kernel with
the PyTorch reference); tests/test_gpu_check.py runs it with ``--tiny``.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Dict, List, Literal, Optional, Tuple

import torch
import tyro
from nerfstudio.models.splatfacto import SplatfactoModelConfig

from dataparsers.synthetic.monocular import MonocularConfig, write_monocular_scene
from dataparsers.synthetic.writers import SynthesisConfig, write_scene
from shapeofmotion_ns.config import shapeofmotion
from shapeofmotion_ns.init import InitConfig
from sharptime_ns.config import sharptime
from splat4d import rasterize
from splat4d.dynamic_model import DynamicSplatModelConfig
from splat4d.gsplat_backend import require_gsplat_cuda
from splat4d.random_scene import random_scene
from splat4d.training import set_up_trainer

ROOT = Path(__file__).resolve().parents[1]
STEP_RATIO_TARGET = 1.3  # SharpTimeGS step time / splatfacto's, from the issue


@dataclass(frozen=True)
class Sizes:
    """Scene and run sizes: the real check, or the tiny dry run."""

    multiview: Tuple[int, int, int, int]  # cameras, frames, width, height
    monocular: Tuple[int, int, int]  # frames, width, height
    init_gaussians: int  # random Gaussians of SharpTimeGS and splatfacto
    som_init: InitConfig
    agreement_gaussians: int
    fps_renders: int


FULL = Sizes(
    (3, 4, 1352, 1014),
    (12, 480, 360),
    200_000,
    InitConfig(num_dynamic=20_000, num_static=40_000, optim_steps=300),
    100_000,
    20,
)
TINY = Sizes(
    (2, 2, 64, 48),
    (4, 48, 36),
    300,
    InitConfig(num_dynamic=300, num_static=600, min_cluster_points=20, optim_steps=20),
    300,
    2,
)


@dataclass
class RunResult:
    method: str
    scene: str
    steps: int
    ms_per_step: float
    peak_memory_mib: Optional[float]  # None on the CPU
    gaussians: int
    render_fps: float
    render_size: str


@dataclass
class GpuCheck:
    device: Literal["cuda", "cpu"] = "cuda"
    """cuda: the check; cpu: dry run of everything that does not need CUDA."""
    tiny: bool = False
    """Tiny scenes (dry runs, seconds)."""
    steps: int = 300
    """Training steps of each method."""
    out_dir: Path = Path("outputs/gpu-check")
    """Scenes (written once, reused) and training runs."""
    json: Optional[Path] = None
    """Also write the results here."""

    def main(self) -> int:
        if self.device == "cuda" and not torch.cuda.is_available():
            print(no_cuda_message(), file=sys.stderr)
            return 2
        sizes = TINY if self.tiny else FULL
        report: Dict = {"device": device_name(self.device), "torch": torch.__version__, "steps": self.steps}
        if self.device == "cuda":
            try:
                report["gsplat_load_s"] = timed(require_gsplat_cuda)
            except RuntimeError as err:  # no nvcc, failed build: the message says what to do
                print(err, file=sys.stderr)
                return 1
            report["cuda_tests"] = run_cuda_tests()
        multiview, monocular = self.scenes(sizes)
        runs = [
            self.train("sharptime", multiview, sharptime_config(multiview, sizes), sizes),
            self.train("splatfacto", multiview, splatfacto_config(multiview, sizes, self.device), sizes),
            self.train("shapeofmotion", monocular, shapeofmotion_config(monocular, sizes), sizes),
        ]
        report["runs"] = [asdict(r) for r in runs]
        report["step_ratio"] = runs[0].ms_per_step / runs[1].ms_per_step
        report["agreement"] = agreement(self.device, sizes)
        print(format_report(report, runs))
        if self.json is not None:
            self.json.write_text(json.dumps(report, indent=2))
        tests = report.get("cuda_tests")
        return 1 if tests is not None and tests["returncode"] != 0 else 0

    def scenes(self, sizes: Sizes) -> Tuple[Path, Path]:
        cams, frames, width, height = sizes.multiview
        multiview = self.out_dir / f"multiview_{cams}x{frames}_{width}x{height}"
        if not multiview.exists():
            print(f"writing {multiview}")
            write_scene(
                "easyvolcap",
                multiview,
                SynthesisConfig(num_cameras=cams, num_frames=frames, width=width, height=height, supersample=1),
            )
        frames_m, width_m, height_m = sizes.monocular
        monocular = self.out_dir / f"monocular_{frames_m}_{width_m}x{height_m}"
        if not monocular.exists():
            print(f"writing {monocular}")
            write_monocular_scene(
                monocular, MonocularConfig(num_frames=frames_m, width=width_m, height=height_m, supersample=1)
            )
        return multiview, monocular

    def train(self, method: str, scene: Path, config, sizes: Sizes) -> RunResult:
        config.machine.device_type = self.device
        config.max_num_iterations = self.steps
        config.output_dir, config.experiment_name, config.vis = self.out_dir / "runs", method, "tensorboard"
        config.steps_per_eval_image = config.steps_per_eval_all_images = config.steps_per_eval_batch = 10**9
        config.steps_per_save = 10**9
        print(f"training {method} on {scene.name} for {self.steps} steps")
        trainer = set_up_trainer(config)
        if self.device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        seconds = timed(trainer.train, self.device)
        peak = torch.cuda.max_memory_allocated() / 2**20 if self.device == "cuda" else None
        model = trainer.pipeline.model
        camera = trainer.pipeline.datamanager.train_dataset.cameras[0:1].to(self.device)
        fps = render_fps(model, camera, sizes.fps_renders, self.device)
        size = f"{int(camera.width)}×{int(camera.height)}"
        return RunResult(
            method,
            scene.name,
            self.steps,
            1000.0 * seconds / self.steps,
            peak,
            len(model.gauss_params["means"]),
            fps,
            size,
        )


# ----- configurations -----
def set_scene(config, scene: Path) -> None:
    config.pipeline.datamanager.data = scene
    config.pipeline.datamanager.dataparser.data = scene


def sharptime_config(scene: Path, sizes: Sizes):
    config = copy.deepcopy(sharptime.config)
    set_scene(config, scene)
    config.pipeline.datamanager.init_method = "random"  # the same start as splatfacto's
    config.pipeline.model.num_random = sizes.init_gaussians
    return config


def splatfacto_config(scene: Path, sizes: Sizes, device: str):
    """SharpTimeGS's data pipeline with nerfstudio's splatfacto model (its gsplat calls need CUDA;
    on the CPU splat4d's DynamicSplatModel, the same model through our rasterizer)."""
    config = copy.deepcopy(sharptime.config)
    set_scene(config, scene)
    config.method_name = "splatfacto"
    config.pipeline.datamanager.init_method = "random"
    model_type = SplatfactoModelConfig if device == "cuda" else DynamicSplatModelConfig
    config.pipeline.model = model_type(random_init=True, num_random=sizes.init_gaussians)
    return config


def shapeofmotion_config(scene: Path, sizes: Sizes):
    config = copy.deepcopy(shapeofmotion.config)
    config.pipeline.datamanager.data = scene
    config.pipeline.datamanager.init = sizes.som_init
    return config


# ----- measurements -----
def timed(fn: Callable[[], object], device: str = "cpu") -> float:
    start = time.perf_counter()
    fn()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


@torch.no_grad()
def render_fps(model, camera, renders: int, device: str) -> float:
    """Eval renders of ``camera`` per second (after one warm-up render)."""
    model.eval()
    camera.times = torch.full((1, 1), 0.5, device=camera.device)
    model.get_outputs_for_camera(camera)
    seconds = timed(lambda: [model.get_outputs_for_camera(camera) for _ in range(renders)], device)
    return renders / seconds


def run_cuda_tests() -> Dict:
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_cuda.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    summary = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else proc.stderr.strip()[-500:]
    if proc.returncode != 0:
        print(proc.stdout[-6000:], proc.stderr[-2000:], sep="\n")
    return {"returncode": proc.returncode, "summary": summary, "seconds": time.perf_counter() - start}


def agreement(device: str, sizes: Sizes) -> Dict:
    """CPU kernel vs gsplat (dry run: vs the PyTorch reference) on one random scene at the
    multi-view scene's resolution: max |Δ| of RGB and alpha, relative error of means2d.grad."""
    _, _, width, height = sizes.multiview
    scene = random_scene(sizes.agreement_gaussians, width, height, seed=3)
    other = ("gsplat", "cuda") if device == "cuda" else ("reference", "cpu")
    (a_img, a_grad), (b_img, b_grad) = (
        render_with_grad(scene, backend, dev) for backend, dev in (("cpu", "cpu"), other)
    )
    return {
        "against": other[0],
        "max_abs_image": float((a_img - b_img).abs().max()),
        "means2d_grad_rel": float((a_grad - b_grad).norm() / b_grad.norm().clamp(min=1e-12)),
    }


def render_with_grad(scene, backend: str, device: str) -> Tuple[torch.Tensor, torch.Tensor]:
    leaves = [p.detach().to(device).requires_grad_() for p in scene.params()]
    render, alpha, info = rasterize(
        *leaves, scene.viewmats.to(device), scene.Ks.to(device), scene.width, scene.height, backend=backend
    )
    info["means2d"].retain_grad()
    weights = torch.rand(render.shape, generator=torch.Generator().manual_seed(0)).to(device)
    (render * weights).sum().backward()
    return torch.cat([render, alpha], -1).detach().cpu(), info["means2d"].grad.cpu()


# ----- report -----
def device_name(device: str) -> str:
    if device == "cuda":
        return f"{torch.cuda.get_device_name()} (CUDA {torch.version.cuda})"
    return f"CPU, {torch.get_num_threads()} threads (dry run)"


def no_cuda_message() -> str:
    cuda = torch.version.cuda or "none (a CPU build)"
    return (
        f"make gpu-check needs an NVIDIA GPU that torch can use; torch.cuda.is_available() is False here "
        f"(torch {torch.__version__}, CUDA {cuda}). On a GPU machine, `make setup` installs torch's CUDA build "
        f"and builds gsplat (README, GPU). `benchmarks/gpu_check.py --device cpu --tiny` is the dry run."
    )


def format_report(report: Dict, runs: List[RunResult]) -> str:
    lines = [f"# GPU check: {report['device']}, torch {report['torch']}, {report['steps']} steps per method", ""]
    if "gsplat_load_s" in report:
        lines.append(f"- gsplat CUDA extension load: {report['gsplat_load_s']:.1f} s")
        tests = report["cuda_tests"]
        lines.append(f"- tests/test_cuda.py: {tests['summary']} ({tests['seconds']:.0f} s)")
    lines += [
        "",
        "| method | scene | ms / step | peak GPU MiB | Gaussians | render FPS | render size |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        memory = f"{r.peak_memory_mib:,.0f}" if r.peak_memory_mib is not None else "—"
        lines.append(
            f"| {r.method} | {r.scene} | {r.ms_per_step:.1f} | {memory} | {r.gaussians:,} | "
            f"{r.render_fps:.1f} | {r.render_size} |"
        )
    ratio = report["step_ratio"]
    verdict = "meets" if ratio <= STEP_RATIO_TARGET else "misses"
    agree = report["agreement"]
    lines += [
        "",
        f"- SharpTimeGS / splatfacto step time: {ratio:.2f}× ({verdict} the ≤ {STEP_RATIO_TARGET}× target)",
        f"- CPU backend vs {agree['against']}: max |Δ image| {agree['max_abs_image']:.2e}, "
        f"means2d gradient relative error {agree['means2d_grad_rel']:.2e}",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(tyro.cli(GpuCheck).main())

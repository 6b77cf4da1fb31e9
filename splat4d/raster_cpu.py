"""Compiled CPU tile rasterizer: gsplat 1.4.0's ``rasterize_to_pixels`` (packed=False).

Same inputs, outputs and semantics as ``raster_reference.rasterize_to_pixels_reference`` (and
gsplat's CUDA kernels), with a hand-written backward. The C++ source
(``csrc/rasterize_cpu.cpp``) is JIT-compiled with ``torch.utils.cpp_extension.load`` on first
use (10-30 s with g++ -O3; the build is cached in torch's extension directory,
``$TORCH_EXTENSIONS_DIR`` or ``~/.cache/torch_extensions``). ``load_extension()`` raises a
``RuntimeError`` when the build fails; callers then fall back to the pure-PyTorch reference.
Setting ``SPLAT4D_DISABLE_CPU_KERNEL=1`` makes it fail on purpose (to exercise that fallback),
``SPLAT4D_VERBOSE_BUILD=1`` shows the compiler output.

Work is split over (camera, tile) on ``torch.get_num_threads()`` threads: the caller and helper
threads of the kernel's own pool (``csrc/task_pool.h``), which sleep when idle instead of
busy-waiting like torch's OpenMP pool (sharing a busy machine fairly also needs
``OMP_WAIT_POLICY=PASSIVE`` for torch's own ops: see the README). The extension
also holds the tile binning (``csrc/tiles_cpu.cpp``, used by ``tiles.intersect_tiles``) the
projection (``csrc/project_cpu.cpp``, used by ``preprocess_cpu.project_gaussians_cpu``) and the
SH colours (``csrc/sh_cpu.cpp``, used by ``preprocess_cpu.view_dependent_colors_cpu``).
Pixels are processed in SIMD groups: 4 float lanes with the compiler's baseline instruction set
(SSE2 on x86-64), or 8 with AVX2 and FMA when the CPU has them (detected at run time; the
fused multiply-adds round differently, so the two builds agree to float rounding, not bit for
bit). ``SPLAT4D_CPU_SIMD=baseline`` forces the baseline; ``simd_isa()`` tells which runs.
Results are deterministic and independent of the number of threads.

Precision: float32 and float64 are computed natively (float64 makes ``gradcheck`` possible);
all floating inputs must share one of these dtypes, anything else raises ``TypeError``.
float32 uses a vectorised exp (< 1.4 ulp, like torch's; gsplat's CUDA __expf is coarser), so
images match the reference to ~1e-7; a pixel can differ by one Gaussian only where an alpha
lies within an ulp of the 1/255 or T = 1e-4 thresholds.
The backward pass starts from the exact final transmittance T kept by the forward pass rather
than gsplat's ``1 - render_alpha`` (which loses up to ~1e-3 relative precision on nearly
opaque pixels), so its gradients agree with autograd through the reference to float rounding.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import threading
import time
from pathlib import Path
from typing import Optional, Tuple

import torch
from torch import Tensor

__all__ = ["load_extension", "rasterize_to_pixels_cpu", "simd_isa"]

logger = logging.getLogger(__name__)

_SOURCE = Path(__file__).resolve().parent / "csrc" / "rasterize_cpu.cpp"
_SOURCES = [_SOURCE] + [
    _SOURCE.parent / f for f in ("tiles_cpu.cpp", "project_cpu.cpp", "sh_cpu.cpp", "fma_peak.cpp")
]  # (+ task_pool.h)
_EXT_NAME = "splat4d_rasterize_cpu"
# -pthread: the kernel's own helper threads (csrc/task_pool.h; not OpenMP, see there)
_CFLAGS = ["-O3", "-pthread"]
_LDFLAGS = ["-pthread"]

_lock = threading.Lock()
_ext = None
_error: Optional[str] = None  # a failed build is not retried in this process

_FALLBACK_HINT = (
    "Use the pure-PyTorch reference instead: splat4d.raster_reference.rasterize_to_pixels_reference, "
    "or rasterize(..., backend='reference') (slow but identical). Building needs a C++17 compiler "
    "(g++) and ninja (pip install ninja); set SPLAT4D_VERBOSE_BUILD=1 for the full log."
)


def _ensure_ninja_on_path() -> None:
    """torch looks for ``ninja`` on PATH; the pip package puts it next to the interpreter,
    which is not on PATH when the virtualenv is not activated."""
    if shutil.which("ninja") is not None:
        return
    candidates = []
    try:
        import ninja  # type: ignore

        candidates.append(getattr(ninja, "BIN_DIR", None))
    except ImportError:
        pass
    candidates.append(os.path.dirname(os.path.realpath(sys.executable)))
    candidates.append(os.path.dirname(sys.executable))
    for d in candidates:
        if d and os.path.exists(os.path.join(d, "ninja")):
            os.environ["PATH"] = d + os.pathsep + os.environ.get("PATH", "")
            return


def load_extension():
    """Compile (first call only; cached on disk) and import the C++ extension.

    Thread-safe; raises ``RuntimeError`` (with the compiler's message and how to fall back) if
    it cannot be built. A failure is remembered: later calls raise at once."""
    global _ext, _error
    if _ext is not None:
        return _ext
    with _lock:
        if _ext is not None:
            return _ext
        if _error is not None:
            raise RuntimeError(_error)
        if os.environ.get("SPLAT4D_DISABLE_CPU_KERNEL", "") not in ("", "0"):
            raise RuntimeError(
                f"the compiled CPU rasterizer is disabled by SPLAT4D_DISABLE_CPU_KERNEL. {_FALLBACK_HINT}"
            )
        try:
            # (importing cpp_extension on a machine without CUDA logs a confusing CUDA_HOME warning)
            cpp_logger = logging.getLogger("torch.utils.cpp_extension")
            level = cpp_logger.level
            cpp_logger.setLevel(logging.ERROR)
            try:
                from torch.utils.cpp_extension import load
            finally:
                cpp_logger.setLevel(level)

            _ensure_ninja_on_path()
            logger.info("loading the compiled CPU rasterizer (compiled on first use, 10-30 s; cached afterwards)")
            start = time.perf_counter()
            ext = load(
                name=_EXT_NAME,
                sources=[str(p) for p in _SOURCES],
                extra_cflags=_CFLAGS,
                extra_ldflags=_LDFLAGS,
                verbose=os.environ.get("SPLAT4D_VERBOSE_BUILD", "") not in ("", "0"),
            )
        except Exception as err:  # compiler/ninja/linker/import errors alike
            detail = str(err).strip()
            if len(detail) > 4000:
                detail = "...\n" + detail[-4000:]
            _error = f"compiling the CPU rasterizer {_SOURCE} failed ({type(err).__name__}): {detail}\n{_FALLBACK_HINT}"
            raise RuntimeError(_error) from err
        logger.info("CPU rasterizer ready after %.1f s", time.perf_counter() - start)
        _ext = ext
        return _ext


def _allow_avx2() -> bool:
    return os.environ.get("SPLAT4D_CPU_SIMD", "auto").lower() not in ("baseline", "sse2", "0", "off")


def simd_isa() -> str:
    """Instruction set the float32 kernels use here: "avx2" or "baseline" (builds if needed)."""
    return load_extension().simd_isa(_allow_avx2())


def _prepare(t: Tensor, dtype: torch.dtype) -> Tensor:
    return t.detach().to(dtype=dtype).contiguous()


class _RasterizeToPixelsCPU(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx,
        means2d,
        conics,
        colors,
        opacities,
        backgrounds,
        width,
        height,
        tile_size,
        isect_offsets,
        flatten_ids,
        absgrad,
    ):
        ext = load_extension()
        dtype = means2d.dtype
        m, co, cl, op = (_prepare(t, dtype) for t in (means2d, conics, colors, opacities))
        bg = None if backgrounds is None else _prepare(backgrounds, dtype)
        offsets = isect_offsets.detach().to(torch.int32).contiguous()
        ids = flatten_ids.detach().to(torch.int32).contiguous()
        ctx.allow_avx2 = _allow_avx2()
        render_colors, render_alphas, T_final, last_ids = ext.rasterize_fwd(
            m, co, cl, op, bg, width, height, tile_size, offsets, ids, ctx.allow_avx2
        )
        ctx.save_for_backward(m, co, cl, op, bg, offsets, ids, T_final, last_ids)
        ctx.geometry = (width, height, tile_size)
        ctx.absgrad = absgrad
        # the caller's tensor object, so that .absgrad lands where gsplat's strategies read it
        ctx.means2d_obj = means2d if absgrad else None
        return render_colors, render_alphas

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, v_render_colors, v_render_alphas):
        m, co, cl, op, bg, offsets, ids, T_final, last_ids = ctx.saved_tensors
        width, height, tile_size = ctx.geometry
        C, N = m.shape[:2]
        D = cl.shape[-1]
        need = ctx.needs_input_grad
        v_means2d = v_conics = v_colors = v_opacities = v_backgrounds = None
        if any(need[:4]) or ctx.absgrad:
            grads = load_extension().rasterize_bwd(
                m,
                co,
                cl,
                op,
                bg,
                width,
                height,
                tile_size,
                offsets,
                ids,
                T_final,
                last_ids,
                v_render_colors.to(m.dtype).contiguous(),
                v_render_alphas.to(m.dtype).contiguous(),
                ctx.allow_avx2,
            )
            grads = grads.view(C, N, 8 + D)
            if need[0]:
                v_means2d = grads[..., 0:2]
            if need[1]:
                v_conics = grads[..., 2:5]
            if need[3]:
                v_opacities = grads[..., 5]
            if need[2]:
                v_colors = grads[..., 8:]
            if ctx.absgrad and ctx.means2d_obj is not None:
                ctx.means2d_obj.absgrad = grads[..., 6:8].contiguous()
        if need[4]:
            v_backgrounds = (v_render_colors * T_final[..., None]).sum(dim=(1, 2))
        return (v_means2d, v_conics, v_colors, v_opacities, v_backgrounds, None, None, None, None, None, None)


def _check_inputs(
    means2d, conics, colors, opacities, width, height, tile_size, isect_offsets, flatten_ids, backgrounds
):
    floats = {"means2d": means2d, "conics": conics, "colors": colors, "opacities": opacities}
    if backgrounds is not None:
        floats["backgrounds"] = backgrounds
    for name, t in list(floats.items()) + [("isect_offsets", isect_offsets), ("flatten_ids", flatten_ids)]:
        if not isinstance(t, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if t.device.type != "cpu":
            raise ValueError(f"rasterize_to_pixels_cpu runs on the CPU; {name} is on {t.device}")
    dtype = means2d.dtype
    if dtype not in (torch.float32, torch.float64):
        raise TypeError(f"rasterize_to_pixels_cpu supports float32 and float64, got means2d of {dtype}")
    for name, t in floats.items():
        if t.dtype != dtype:
            raise TypeError(f"{name} is {t.dtype} but means2d is {dtype}; all float inputs must share one dtype")
    for name, t in (("isect_offsets", isect_offsets), ("flatten_ids", flatten_ids)):
        if t.dtype not in (torch.int32, torch.int64):
            raise TypeError(f"{name} must be an int32 tensor, got {t.dtype}")
    if means2d.dim() != 3 or means2d.shape[-1] != 2:
        raise ValueError(f"means2d must be [C, N, 2], got {list(means2d.shape)}")
    C, N = means2d.shape[:2]
    if colors.dim() != 3 or colors.shape[:2] != (C, N) or colors.shape[-1] < 1:
        raise ValueError(f"colors must be [C, N, D] with C={C}, N={N}, D>=1, got {list(colors.shape)}")
    D = colors.shape[-1]
    expected = {"conics": (conics, (C, N, 3)), "opacities": (opacities, (C, N))}
    if backgrounds is not None:
        expected["backgrounds"] = (backgrounds, (C, D))
    tile_w, tile_h = -(-int(width) // int(tile_size)), -(-int(height) // int(tile_size))
    expected["isect_offsets"] = (isect_offsets, (C, tile_h, tile_w))
    for name, (t, shape) in expected.items():
        if tuple(t.shape) != shape:
            raise ValueError(f"{name} must have shape {list(shape)}, got {list(t.shape)}")
    if flatten_ids.dim() != 1:
        raise ValueError(f"flatten_ids must be 1-D, got {list(flatten_ids.shape)}")
    if int(tile_size) <= 0 or int(width) < 0 or int(height) < 0:
        raise ValueError(f"bad image size {width}x{height} or tile size {tile_size}")


def rasterize_to_pixels_cpu(
    means2d: Tensor,  # [C, N, 2]
    conics: Tensor,  # [C, N, 3]
    colors: Tensor,  # [C, N, D]
    opacities: Tensor,  # [C, N]
    image_width: int,
    image_height: int,
    tile_size: int,
    isect_offsets: Tensor,  # [C, tile_h, tile_w] int32
    flatten_ids: Tensor,  # [M] int32
    backgrounds: Optional[Tensor] = None,  # [C, D]
    absgrad: bool = False,
) -> Tuple[Tensor, Tensor]:
    """Returns render_colors [C, H, W, D] and render_alphas [C, H, W, 1]. With ``absgrad``,
    backward leaves Σ_pixels |∂L/∂means2d| in ``means2d.absgrad`` [C, N, 2].

    Differentiable w.r.t. means2d, conics, colors, opacities and backgrounds (first order).
    Raises RuntimeError if the extension cannot be compiled (see ``load_extension``)."""
    _check_inputs(
        means2d,
        conics,
        colors,
        opacities,
        image_width,
        image_height,
        tile_size,
        isect_offsets,
        flatten_ids,
        backgrounds,
    )
    return _RasterizeToPixelsCPU.apply(
        means2d,
        conics,
        colors,
        opacities,
        backgrounds,
        int(image_width),
        int(image_height),
        int(tile_size),
        isect_offsets,
        flatten_ids,
        bool(absgrad),
    )

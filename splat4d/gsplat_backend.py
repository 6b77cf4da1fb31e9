"""Loads gsplat's CUDA extension and says clearly why when it cannot be loaded.

gsplat 1.4.0 from PyPI is pure Python: importing ``gsplat.cuda._backend`` JIT-compiles its
kernels with ``nvcc`` (minutes, the first time; cached in torch's extension directory). Without
``nvcc`` on PATH it sets ``_C = None`` and the first render fails with "'NoneType' object has no
attribute ..."; a failed compilation (e.g. nvcc's CUDA major version is not torch's) raises
from the import. Both become a RuntimeError that names nvcc and ``make setup``.
"""

from __future__ import annotations

import torch

_loaded = False

FIX = (
    "`make setup` on this machine checks the CUDA toolkit, says what is missing and builds the "
    "extension once (see README, GPU)."
)


def require_gsplat_cuda() -> None:
    """Import (building if needed) gsplat's CUDA extension; RuntimeError naming the cause if it fails."""
    global _loaded
    if _loaded:
        return
    try:
        from gsplat.cuda import _backend
    except Exception as err:  # noqa: BLE001 - torch's JIT build raises RuntimeError, OSError, ImportError...
        raise RuntimeError(
            f"gsplat's CUDA extension failed to build or load ({type(err).__name__}: {err}). It is compiled by "
            f"nvcc, whose CUDA major version must be torch's (torch {torch.__version__}, CUDA {torch.version.cuda}). "
            + FIX
        ) from err
    if _backend._C is None:
        raise RuntimeError(
            "gsplat's CUDA extension is not built and cannot be: gsplat compiles it with `nvcc`, which is not on "
            f"PATH (install the CUDA toolkit {torch.version.cuda} and put its bin/ on PATH). " + FIX
        )
    _loaded = True

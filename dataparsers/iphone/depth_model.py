"""Relative disparity of video frames from a monocular depth model (Depth Anything, through
Hugging Face ``transformers``), loaded only from this machine: nothing is downloaded at run time.

``--depth-model NAME_OR_PATH``: an existing folder is loaded from that folder (what
``hf download <repo> --local-dir <folder>`` writes); anything else is a Hugging Face repository
id looked up in the local Hugging Face cache. The model must be a relative Depth Anything model
(V1 or V2): its output is an affine-invariant disparity, which depth_alignment.py fits to the
structure-from-motion points.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable, Sequence, Tuple

import numpy as np
import torch

DEFAULT_DEPTH_MODEL = "depth-anything/Depth-Anything-V2-Small-hf"
REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


class DepthModelError(RuntimeError):
    """The depth model cannot be loaded or is not a relative Depth Anything model."""


def fetch_command(name: str) -> str:
    """The command that puts the weights for ``--depth-model name`` on this machine, run on one
    with internet: a repository id is downloaded into models/<its name>; a folder path (it starts
    with ``.``, ``/`` or ``~``, or its parent folder exists) receives the default model."""
    path = Path(name).expanduser()
    path_like = name.startswith((".", "/", "~")) or (path.parent != Path(".") and path.parent.is_dir())
    if REPO_ID.match(name) and not path_like:
        repo, folder = name, f"models/{name.split('/')[-1]}"
    else:
        repo, folder = DEFAULT_DEPTH_MODEL, name
    return (
        f"hf download {repo} --local-dir {folder}  (huggingface_hub < 1.0: huggingface-cli download with the "
        f"same arguments), then copy {folder} here and pass --depth-model {folder}"
    )


def locate_depth_model(name: str) -> str:
    """What ``from_pretrained`` loads for ``--depth-model name``: the folder, or the repository id
    when the Hugging Face cache holds it; DepthModelError naming the model, where it was looked
    for and the command that fetches it otherwise (checked before any long stage runs)."""
    try:
        import transformers  # noqa: F401  (the import is the check)
        from huggingface_hub import try_to_load_from_cache
        from huggingface_hub.constants import HF_HUB_CACHE
    except ImportError as err:
        raise DepthModelError(
            f"--depth-model needs Hugging Face transformers ({err}); install it with: pip install 'splat4d[depth]'"
        ) from err
    folder = Path(name).expanduser()
    if folder.is_dir():
        if not (folder / "config.json").is_file():
            raise DepthModelError(
                f"{folder.resolve()}: has no config.json, so it is not a downloaded model folder. "
                f"On a machine with internet run: {fetch_command(name)}"
            )
        return str(folder)
    if REPO_ID.match(name) and isinstance(try_to_load_from_cache(name, "config.json"), str):
        return name
    raise DepthModelError(
        f"depth model {name!r} is not on this machine: there is no folder {folder.resolve()} and no repository "
        f"{name!r} in the Hugging Face cache {HF_HUB_CACHE}. On a machine with internet run: {fetch_command(name)}"
    )


def load_depth_model(name: str) -> Tuple[Any, Any]:
    """(model in eval mode, its image processor) of ``name`` (locate_depth_model), loaded without
    network access; DepthModelError when it is not a relative Depth Anything model."""
    source = locate_depth_model(name)
    from transformers import AutoImageProcessor, AutoModelForDepthEstimation

    try:
        processor = AutoImageProcessor.from_pretrained(source, local_files_only=True)
        model = AutoModelForDepthEstimation.from_pretrained(source, local_files_only=True)
    except (OSError, ValueError) as err:
        raise DepthModelError(f"depth model {name!r} ({source}) cannot be loaded: {_first_line(err)}") from err
    config = model.config
    if config.model_type != "depth_anything" or getattr(config, "depth_estimation_type", "relative") != "relative":
        raise DepthModelError(
            f"depth model {name!r} is a {config.model_type} model estimating "
            f"{getattr(config, 'depth_estimation_type', 'depth')}; a relative Depth Anything model is needed "
            f"(its disparity is aligned to the SfM points), e.g. {DEFAULT_DEPTH_MODEL}"
        )
    return model.eval(), processor


def predict_disparity(
    model: Any, processor: Any, frames: Sequence[np.ndarray], tick: Callable[[], None] = lambda: None
) -> np.ndarray:
    """float32 [N, H, W] relative disparity of RGB uint8 frames [H, W, 3] at their resolution
    (on CUDA when available)."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = model.to(device)
    out = []
    with torch.no_grad():
        for frame in frames:
            pixels = processor(images=frame, return_tensors="pt")["pixel_values"].to(device)
            predicted = model(pixel_values=pixels).predicted_depth  # [1, h, w]
            resized = torch.nn.functional.interpolate(
                predicted[:, None], size=frame.shape[:2], mode="bicubic", align_corners=False
            )
            out.append(resized[0, 0].float().cpu().numpy())
            tick()
    return np.stack(out)


def _first_line(err: Exception) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__

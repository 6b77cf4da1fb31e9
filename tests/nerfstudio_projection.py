"""Points through a dataparser's outputs, as nerfstudio sees them (the round-trip tests)."""

import numpy as np

from splat4d.geometry import apply_transform, opengl_c2w_to_opencv_w2c, project


def to_nerfstudio(outputs, points: np.ndarray) -> np.ndarray:
    """World points [P, 3] in the parser's normalized space: s · (R x + t)."""
    return outputs.dataparser_scale * apply_transform(outputs.dataparser_transform.double().numpy(), points)


def project_nerfstudio(outputs, index: int, points: np.ndarray) -> np.ndarray:
    """Pixels [P, 2] of normalized-space points [P, 3] in image ``index``, through nerfstudio's
    camera (OpenGL camera-to-world; pixel centres at +0.5)."""
    cams = outputs.cameras
    c2w = np.eye(4)
    c2w[:3] = cams.camera_to_worlds[index].double().numpy()
    K = cams.get_intrinsics_matrices()[index].double().numpy()
    return project(apply_transform(opengl_c2w_to_opencv_w2c(c2w), points), K)[0]

"""The articulated synthetic scene: links stay attached at their joints while moving relative to
each other, and a written monocular scene records which scene its ground truth rebuilds."""

import numpy as np

from dataparsers.synthetic.articulated import articulated_scene
from dataparsers.synthetic.ground_truth import load_ground_truth
from dataparsers.synthetic.monocular import MonocularConfig, write_monocular_scene


def point(pose, local):
    return pose[:3, :3] @ np.asarray(local) + pose[:3, 3]


def test_links_stay_attached_and_bend_at_their_joints():
    scene = articulated_scene(num_frames=30)
    names = [o.name for o in scene.objects]
    assert names == ["upper_arm", "forearm", "hand", "rolling_sphere"]
    relative = []
    for frame in np.linspace(0, 29, 7):
        upper, fore, hand = (scene.object_pose(k, frame) for k in range(3))
        # the elbow: top of the upper arm (half length 0.35) = bottom of the forearm (half length 0.28)
        assert np.allclose(point(upper, [0, 0, 0.35]), point(fore, [0, 0, -0.28]), atol=1e-9)
        assert np.allclose(point(fore, [0, 0, 0.28]), point(hand, [0, 0, -0.11]), atol=1e-9)  # the wrist
        relative.append(np.linalg.inv(upper) @ fore)
    bends = [np.degrees(np.arccos(np.clip((np.trace(r[:3, :3]) - 1) / 2, -1, 1))) for r in relative]
    assert max(bends) - min(bends) > 20, "the elbow bends: the arm does not move rigidly"
    base = scene.object_pose(0, 0.0)[:3, 3] - scene.object_pose(0, 0.0)[:3, :3] @ [0, 0, 0.35]
    assert np.allclose(base, [0.15, 0.05, 0.0])  # the shoulder stays put


def test_written_scene_rebuilds_the_articulated_scene(tmp_path):
    out = write_monocular_scene(
        tmp_path / "scene",
        MonocularConfig(num_frames=3, width=32, height=24, scene="articulated", handheld_tremor=0.02),
    )
    truth = load_ground_truth(out)
    assert truth.family == "articulated" and truth.object_names[:3] == ["upper_arm", "forearm", "hand"]
    rebuilt = truth.scene()
    assert np.allclose(rebuilt.object_pose(1, 2.0), truth.object_poses[2, 1])

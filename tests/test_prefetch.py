"""Training batches decoded ahead on worker threads: same batches, same order, bounded, errors kept."""

import threading
import time

import pytest
import torch

from dataparsers.easyvolcap import ENeRFOutdoorDataParserConfig
from dataparsers.multiview import MultiViewAutoDataParserConfig
from dataparsers.synthetic.writers import SynthesisConfig, write_scene
from splat4d.datamanager import LazyImageDatamanagerConfig
from splat4d.prefetch import Prefetcher


def counting_plans(log: list):
    i = 0
    while True:
        log.append((i, threading.current_thread().name))
        yield i
        i += 1


def test_batches_come_in_plan_order_with_plans_made_on_the_calling_thread():
    planned, in_flight, most = [], [0], [0]
    lock = threading.Lock()

    def load(plan: int) -> tuple:
        with lock:
            in_flight[0] += 1
            most[0] = max(most[0], in_flight[0])
        time.sleep(0.002 * (plan % 3))  # uneven load times: finishing order differs from plan order
        with lock:
            in_flight[0] -= 1
        return plan, threading.current_thread().name

    prefetcher = Prefetcher(counting_plans(planned), load, workers=3, depth=4)
    batches = [prefetcher.next() for _ in range(20)]
    prefetcher.close()
    assert [plan for plan, _ in batches] == list(range(20))
    assert all(name.startswith("splat4d-prefetch") for _, name in batches)
    assert {name for _, name in planned} == {threading.current_thread().name}
    assert most[0] <= 3 and len(planned) <= 20 + 4
    assert prefetcher.batches == 20 and prefetcher.wait_seconds > 0


def test_without_workers_loading_happens_on_the_calling_thread():
    prefetcher = Prefetcher(counting_plans([]), lambda plan: threading.current_thread().name, workers=0, depth=1)
    assert prefetcher.next() == threading.current_thread().name


def test_a_loading_error_reaches_the_training_thread():
    def load(plan: int) -> int:
        if plan == 2:
            raise FileNotFoundError("frame 2 is missing")
        return plan

    prefetcher = Prefetcher(counting_plans([]), load, workers=2, depth=2)
    assert [prefetcher.next(), prefetcher.next()] == [0, 1]
    with pytest.raises(FileNotFoundError, match="frame 2"):
        prefetcher.next()
    prefetcher.close()


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="depth"):
        Prefetcher(counting_plans([]), lambda p: p, workers=1, depth=0)


def test_datamanager_yields_the_same_batches_with_and_without_workers(tmp_path):
    root = write_scene("enerf", tmp_path / "scene", SynthesisConfig(num_cameras=3, num_frames=4, width=48, height=32))
    runs = []
    for workers in (0, 2):
        parser = MultiViewAutoDataParserConfig(
            data=root, enerf_outdoor=ENeRFOutdoorDataParserConfig(test_cameras=("01",))
        )
        manager = LazyImageDatamanagerConfig(
            dataparser=parser, prefetch_workers=workers, image_cache_size=2, train_cameras_sampling_seed=7
        ).setup(device="cpu")
        n = len(manager.train_dataset)
        batches = [manager.next_train(step) for step in range(2 * n + 3)]  # past two epochs
        runs.append(batches)
        indices = [int(camera.metadata["cam_idx"]) for camera, _ in batches]
        assert sorted(indices[:n]) == list(range(n)) and sorted(indices[n : 2 * n]) == list(range(n))
        manager.train_prefetcher.close()
    for (cam_a, data_a), (cam_b, data_b) in zip(*runs):
        assert cam_a.metadata["cam_idx"] == cam_b.metadata["cam_idx"]
        assert torch.equal(cam_a.camera_to_worlds, cam_b.camera_to_worlds) and torch.equal(cam_a.times, cam_b.times)
        assert torch.equal(data_a["image"], data_b["image"])

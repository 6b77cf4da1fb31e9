"""Fixtures shared by several test files."""

from __future__ import annotations

from pathlib import Path

import pytest

from dataparsers.synthetic.monocular import MonocularConfig, write_monocular_scene


@pytest.fixture(scope="session")
def monocular_scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic monocular video in the DyCheck iPhone layout, with its priors and ground
    truth: 8 frames of 96×72 (dataparsers/synthetic/monocular.py), written once per session.
    Tests may add caches to it; one that changes its files works on a copy."""
    return write_monocular_scene(
        tmp_path_factory.mktemp("monocular") / "scene", MonocularConfig(num_frames=8, width=96, height=72)
    )

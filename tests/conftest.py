"""Shared fixtures: where the shared real data lives, small image folders, quiet TensorFlow."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
FACES = SHARED / "anime_faces"


def require_shared(*parts: str) -> Path:
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared test data not found at {path} (the project's ../shared/data)")
    return path


@pytest.fixture
def real_faces(tmp_path) -> Path:
    """A folder with 64 real anime faces (copied from ../shared/data into tmp, never into the repo)."""
    source = require_shared("anime_faces")
    folder = tmp_path / "faces"
    folder.mkdir()
    for i in range(64):
        shutil.copy(source / f"{i}.jpg", folder / f"{i}.jpg")
    return folder


@pytest.fixture
def noise_faces(tmp_path):
    """noise_faces(count) -> the ImageSource of a folder of `count` random 32x32 images, tmp_path / "faces"."""

    def make(count: int):
        import cv2
        import numpy as np

        from illustration_gan import data

        folder = tmp_path / "faces"
        folder.mkdir()
        rng = np.random.default_rng(0)
        for i in range(count):
            cv2.imwrite(str(folder / f"{i}.png"), rng.integers(0, 255, (32, 32, 3), dtype=np.uint8))
        return data.scan(str(folder))

    return make


@pytest.fixture
def small_overrides() -> dict:
    """A DCGAN small enough to train an epoch in seconds."""
    return dict(image_size=32, g_width=16, d_width=16, batch_size=16, epochs=1, z_dim=32)


@pytest.fixture
def lock_holder():
    """lock_holder(folder) -> a child process holding folder's lock (illustration_gan/folder_lock.py)
    until the test kills it; killed at teardown otherwise."""
    import subprocess
    import sys

    children = []
    code = ("import sys, time\nfrom illustration_gan import folder_lock\n"
            "with folder_lock.hold(sys.argv[1], 'holder'):\n    print('held', flush=True)\n    time.sleep(600)\n")

    def start(folder):
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        child = subprocess.Popen([sys.executable, "-c", code, str(folder)], cwd=ROOT, env=env,
                                 stdout=subprocess.PIPE, text=True)
        children.append(child)
        assert child.stdout.readline().strip() == "held"
        return child

    yield start
    for child in children:
        child.kill()
        child.wait()

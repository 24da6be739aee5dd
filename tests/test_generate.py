"""Using a trained generator: streaming, resumable `write_images`, `load_sampler`'s
messages, and loading generator.keras as the README says (issue 25, items 12-14)."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from illustration_gan import UserError, generate
from illustration_gan.config import ModelConfig
from illustration_gan.networks import build_networks

TINY = ModelConfig(architecture="dcgan", image_size=32, z_dim=16, g_width=8, d_width=8)


@pytest.fixture(scope="module")
def generator():
    return build_networks(TINY).generator


def _sampler(generator, batch_size=4):
    return generate.Sampler(generator, batch_size=batch_size)


def _digests(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.suffix == ".png"}


class _InterruptAfter:
    """Wraps a sampler's forward pass: Ctrl-C arrives during the `calls`-th batch."""

    def __init__(self, sampler, calls):
        self.forward, self.calls, self.count = sampler._forward, calls, 0

    def __call__(self, z):
        self.count += 1
        if self.count == self.calls:
            raise KeyboardInterrupt
        return self.forward(z)


def test_write_images_streams_batches_and_an_interrupted_run_continues_to_the_same_images(generator, tmp_path):
    whole = tmp_path / "whole"
    paths = generate.write_images(_sampler(generator), 10, str(whole), seed=3, progress=None)
    assert len(paths) == 11 and os.path.basename(paths[-1]) == "grid.png"

    parts = tmp_path / "parts"
    sampler = _sampler(generator)
    sampler._forward = _InterruptAfter(sampler, calls=3)  # blocks of 4: images 0-7 are written, then Ctrl-C
    with pytest.raises(UserError) as caught:
        generate.write_images(sampler, 10, str(parts), seed=3, progress=None)
    message = str(caught.value)
    assert "8 of 10 images" in message and f"--output {parts}" in message and "--seed 3" in message
    assert sorted(p.name for p in parts.glob("*.png")) == [f"seed0003-{i:06d}.png" for i in range(8)]
    assert not list(parts.glob(".*partial"))

    resumed = _sampler(generator)
    calls = _InterruptAfter(resumed, calls=0)  # counts batches, never interrupts
    resumed._forward = calls
    generate.write_images(resumed, 10, str(parts), seed=3, progress=None)
    assert calls.count == 1  # only the block holding images 8 and 9 (the grid's blocks: the grid needs them)
    assert _digests(parts) == _digests(whole)  # images and grid.png, byte for byte


def test_images_do_not_depend_on_the_count_or_the_sampler_batch(generator, tmp_path):
    generate.write_images(_sampler(generator), 6, str(tmp_path / "six"), seed=1, progress=None)
    generate.write_images(_sampler(generator), 3, str(tmp_path / "three"), seed=1, progress=None)
    six, three = _digests(tmp_path / "six"), _digests(tmp_path / "three")
    assert all(six[name] == digest for name, digest in three.items() if name != "grid.png")


def test_progress_line_and_refusals(generator, tmp_path):
    stream = io.StringIO()
    generate.write_images(_sampler(generator), 5, str(tmp_path / "out"), seed=0, progress=stream)
    assert "generate: 5/5 images (" in stream.getvalue() and "/s" in stream.getvalue()
    # Another seed in the same folder would mix images: refused, as are files the folder did not get from here.
    with pytest.raises(UserError, match="already exist"):
        generate.write_images(_sampler(generator), 5, str(tmp_path / "out"), seed=1, progress=None)
    other = build_networks(TINY).generator  # other weights
    with pytest.raises(UserError, match="already exist"):
        generate.write_images(_sampler(other), 5, str(tmp_path / "out"), seed=0, progress=None)
    before = _digests(tmp_path / "out")
    generate.write_images(_sampler(other), 5, str(tmp_path / "out"), seed=0, overwrite=True, progress=None)
    assert _digests(tmp_path / "out") != before


def test_missing_checkpoint_folder_is_named(tmp_path):
    missing = tmp_path / "x" / "run" / "checkpoints"
    with pytest.raises(UserError, match=r"checkpoints.*does not exist"):
        generate.load_sampler(checkpoint=str(missing))
    (tmp_path / "x" / "run" / "checkpoints").mkdir(parents=True)
    with pytest.raises(UserError, match="no checkpoint in"):
        generate.load_sampler(checkpoint=str(missing))
    with pytest.raises(UserError, match="no such checkpoint"):
        generate.load_sampler(checkpoint=str(missing / "ckpt-7"))


README_SNIPPET = """
import keras
import illustration_gan

generator = keras.saving.load_model({path!r})
print(type(generator).__name__, generator.sample_latents(2, [0, 0]).shape)
"""


@pytest.mark.parametrize("first", ["keras", "illustration_gan"])
def test_generator_keras_loads_after_importing_illustration_gan(generator, tmp_path, first):
    path = str(tmp_path / "generator.keras")
    generator.save(path)
    snippet = README_SNIPPET.format(path=path)
    if first == "illustration_gan":
        snippet = snippet.replace("import keras\nimport illustration_gan", "import illustration_gan\nimport keras")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(snippet)], capture_output=True, text=True,
                            env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["DCGANGenerator", "(2,", "16)"]


def test_importing_illustration_gan_does_not_import_tensorflow():
    code = "import sys, illustration_gan, illustration_gan.config; print('tensorflow' in sys.modules, 'keras' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.split() == ["False", "False"], result.stderr[-2000:]

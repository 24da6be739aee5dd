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


# ----------------------------------------------------------------------------- issue 49: damaged inputs, hostile outputs


def _mount_tmpfs(path, options: str) -> None:
    path.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {result.stderr.decode().strip()}")


def test_an_output_that_is_a_file_or_on_a_read_only_disk_is_one_line(generator, tmp_path):
    """Issue 49, item 16: FileExistsError and OSError tracebacks before (the folder lock now meets both first)."""
    existing = tmp_path / "a-file"
    existing.write_text("mine")
    with pytest.raises(UserError, match="is not a folder") as error:
        generate.write_images(_sampler(generator), 2, str(existing), progress=None)
    assert existing.read_text() == "mine" and "\n" not in str(error.value)
    disk = tmp_path / "ro"
    _mount_tmpfs(disk, "ro,size=100k")
    try:
        with pytest.raises(UserError, match="Read-only file system") as error:
            generate.write_images(_sampler(generator), 2, str(disk / "out"), progress=None)
        assert "\n" not in str(error.value)
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def test_a_full_disk_stops_with_one_line_and_the_same_command_finishes_once_there_is_room(generator, tmp_path):
    """Issue 49, item 16: ENOSPC was a traceback."""
    generate.write_images(_sampler(generator), 40, str(tmp_path / "whole"), seed=2, progress=None)
    disk = tmp_path / "disk"
    _mount_tmpfs(disk, "size=400k")  # tmpfs gives each file whole 4 KiB pages
    try:
        filler = disk / "filler"
        filler.write_bytes(b"\0" * 350_000)
        with pytest.raises(UserError, match=r"could not write .*No space left on device .*MB free.* of 40 images are in"
                           ) as error:
            generate.write_images(_sampler(generator), 40, str(disk / "out"), seed=2, progress=None)
        assert "\n" not in str(error.value)
        assert not list((disk / "out").glob(".*partial"))
        filler.unlink()
        generate.write_images(_sampler(generator), 40, str(disk / "out"), seed=2, progress=None)
        assert _digests(disk / "out") == _digests(tmp_path / "whole")
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def _run_with_checkpoints(tmp_path, generator, steps=(2, 4)):
    """A run folder holding training_options.json and a checkpoint of `generator` at each of `steps` (weights
    scaled by the step, so each checkpoint gives other images); returns it and the weights of each."""
    import tensorflow as tf

    from illustration_gan import config as config_lib
    from illustration_gan import run_folder

    run = tmp_path / "run"
    run.mkdir()
    config = config_lib.Config(preset="dcgan", model=TINY)
    run_folder.write_json(str(run / run_folder.OPTIONS_FILE), {"config": config.to_json()})
    model = build_networks(TINY).generator
    model.set_weights(generator.get_weights())
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(generator=model), str(run / "checkpoints"), 5)
    weights = {}
    for step in steps:
        model.set_weights([w * (1 + step / 10) for w in generator.get_weights()])
        weights[step] = model.get_weights()
        manager.save(checkpoint_number=step)
    return run, weights


def test_a_damaged_checkpoint_falls_back_to_the_newest_that_restores_and_says_so(generator, tmp_path):
    """Issue 49, item 17: a truncated checkpoint was an IndexError traceback."""
    run, weights = _run_with_checkpoints(tmp_path, generator)
    newest = run / "checkpoints" / "ckpt-4.data-00000-of-00001"
    newest.write_bytes(newest.read_bytes()[:100])
    for asked in (run / "checkpoints", run / "checkpoints" / "ckpt-4"):
        lines = []
        sampler = generate.load_sampler(checkpoint=str(asked), warn=lines.append)
        assert all(np.array_equal(a, b) for a, b in zip(sampler.generator.get_weights(), weights[2], strict=True))
        assert "skipped checkpoint ckpt-4" in lines[0] and "generating from ckpt-2" in lines[-1]
    older = run / "checkpoints" / "ckpt-2.data-00000-of-00001"
    older.write_bytes(older.read_bytes()[:100])
    with pytest.raises(UserError, match=r"no checkpoint in .* restores \(2 damaged"):
        generate.load_sampler(checkpoint=str(run / "checkpoints"), warn=lambda line: None)
    assert newest.exists() and older.exists()  # never deleted


def test_a_truncated_generator_keras_is_called_damaged_with_the_way_back(generator, tmp_path):
    """Issue 49, item 18: Keras said "File not found" of a file that exists."""
    run, _ = _run_with_checkpoints(tmp_path, generator)
    generator.save(str(run / "generator.keras"))
    assert generate.load_sampler(str(run)).z_dim == 16
    path = run / "generator.keras"
    path.write_bytes(path.read_bytes()[:3000])
    with pytest.raises(UserError) as error:
        generate.load_sampler(str(run))
    message = str(error.value)
    assert message.startswith(f"{path} is damaged (3,000 bytes") and "\n" not in message
    assert f"--checkpoint {run / 'checkpoints'}" in message and f"--resume {run}" in message
    assert generate.load_sampler(checkpoint=str(run / "checkpoints")).z_dim == 16  # the way it names works


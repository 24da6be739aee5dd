"""Using a trained generator: load it from a run folder and write images.

A `Sampler` wraps a generator with its latent distribution; `sample_uint8(n, seed)`
is deterministic in `seed`, which is what `--seed`, the web page's seed box and
the evaluation code rely on.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
import zipfile
from typing import TextIO

import keras
import numpy as np
import tensorflow as tf

from illustration_gan import UserError, data, folder_lock, run_folder
from illustration_gan.networks import Generator, build_networks


class Sampler:
    def __init__(self, generator: Generator, batch_size: int = 64):
        self.generator = generator
        self.batch_size = batch_size
        self._forward = tf.function(lambda z: generator(z, training=False), reduce_retracing=True)

    @property
    def image_size(self) -> int:
        return self.generator.model_config.image_size

    @property
    def z_dim(self) -> int:
        return self.generator.model_config.z_dim

    def latents(self, n: int, seed: int) -> np.ndarray:
        return self.generator.sample_latents(n, tf.constant([seed, 0], tf.int64)).numpy()

    def latent_for_seed(self, seed: int) -> np.ndarray:
        """The z of one face identified by its own seed (the web page's "seed" of a face)."""
        return self.latents(1, seed)[0]

    def images_from_latents(self, z: np.ndarray) -> np.ndarray:
        out = []
        for start in range(0, len(z), self.batch_size):
            out.append(data.to_uint8(self._forward(tf.constant(z[start : start + self.batch_size], tf.float32))))
        return np.concatenate(out) if out else np.zeros((0, self.image_size, self.image_size, 3), np.uint8)

    def sample_uint8(self, n: int, seed: int = 0) -> np.ndarray:
        """`n` RGB images; the same (n, seed) always gives the same images."""
        return self.images_from_latents(self.latents(n, seed))


def load_sampler(run_dir: str = "", checkpoint: str = "", run_root: str = "runs", best: bool = False,
                 warn=print) -> Sampler:
    """From `generator.keras` of a run (`best`: generator-best.keras), or from a training checkpoint
    (`warn` says which, when a damaged one is skipped)."""
    if checkpoint:
        return Sampler(_generator_from_checkpoint(checkpoint, warn))
    run_dir = run_folder.resolve_run_dir(run_dir, run_root)
    name = run_folder.BEST_GENERATOR_FILE if best else run_folder.GENERATOR_FILE
    path = os.path.join(run_dir, name)
    if best and not os.path.exists(path):
        raise UserError(f"{run_dir} has no {name}: it is kept by training with --fid_every N")
    if not os.path.exists(path):
        raise UserError(f"{run_dir} has no {name} yet (it is written at the end of each epoch and where training stops)")
    import illustration_gan.networks  # noqa: F401  (registers the custom classes)

    try:
        return Sampler(keras.saving.load_model(path, compile=False))
    except Exception as error:  # noqa: BLE001  (Keras says "File not found" for a torn zip; any failure here is the file)
        reason = str(error).strip().splitlines()[0][:120] if str(error).strip() else type(error).__name__
        if not zipfile.is_zipfile(path):  # Keras then says "File not found" of the file it was given
            reason = "not a complete .keras (zip) file"
        checkpoints = os.path.join(run_dir, run_folder.BEST_CHECKPOINT_DIR if best else "checkpoints")
        raise UserError(
            f"{path} is damaged ({os.path.getsize(path):,} bytes: {reason}); generate from the run's newest "
            f"checkpoint instead with --checkpoint {checkpoints} (its live generator, without the weight average a "
            f"run with --ema_kimg saves), or train on with --TYPE train --resume {run_dir} and a larger --epochs, "
            "which writes the file again"
        ) from None


def _generator_from_checkpoint(checkpoint: str, warn=print) -> Generator:
    """`checkpoint` is a run folder's checkpoints/ckpt-N prefix (or the folder: newest). A damaged one is
    skipped for the newest that restores, as --resume does, with a line saying so."""
    if os.path.isdir(checkpoint):
        folder, wanted = checkpoint, ""
        if not run_folder.checkpoint_prefixes(folder):
            raise UserError(f"no checkpoint in {checkpoint}")
    else:
        folder, wanted = os.path.dirname(os.path.abspath(checkpoint)), os.path.abspath(checkpoint)
        if not os.path.isdir(folder):
            raise UserError(f"--checkpoint {checkpoint}: no such checkpoint or folder ({folder} does not exist)")
        if not tf.io.gfile.glob(checkpoint + ".index"):
            raise UserError(
                f"--checkpoint {checkpoint}: no such checkpoint (no {os.path.basename(checkpoint)}.index in {folder}); "
                "pass a run's checkpoints/ folder for its newest, or one of its ckpt-N prefixes"
            )
    run_dir = os.path.dirname(os.path.abspath(folder))
    config = run_folder.read_config(run_dir)
    generator = build_networks(config.model).generator  # the live generator (experiments/ema_halflives.py's "none")
    skipped = []
    restored = run_folder.restore_newest_checkpoint(tf.train.Checkpoint(generator=generator), folder,
                                                    warn=skipped.append, first=wanted)
    for line in skipped:
        warn(line)
    if restored is None:
        raise UserError(f"no checkpoint in {folder} restores ({len(skipped)} damaged; see above)")
    if skipped:
        warn(f"generating from {os.path.basename(restored)}, the newest checkpoint of {folder} that restores")
    return generator


def next_output_dir(run_dir: str) -> str:
    existing = [n for n in os.listdir(run_dir) if n.startswith("generated-")] if os.path.isdir(run_dir) else []
    numbers = [int(n.split("-")[1]) for n in existing if n.split("-")[1].isdigit()]
    return os.path.join(run_dir, f"generated-{max(numbers, default=-1) + 1:03d}")


MARKER_FILE = "generate.json"  # in an output folder: seed, block size and generator of its images
GRID_FILE = "grid.png"
GRID_COUNT = 100


class GenerationInterrupted(UserError):
    """Ctrl-C during write_images: what was written is kept; the message says how to continue."""

    def __init__(self, message: str, written: int):
        super().__init__(message)
        self.written = written


def image_name(seed: int, index: int) -> str:
    return f"seed{seed:04d}-{index:06d}.png"


def generator_fingerprint(generator) -> str:
    """A short hash of the generator's weights: which network an output folder's images came from."""
    digest = hashlib.sha256()
    for weight in generator.weights:
        digest.update(np.ascontiguousarray(keras.ops.convert_to_numpy(weight)).tobytes())
    return digest.hexdigest()[:16]


@folder_lock.locking("output_dir", "generate")  # one writer per output folder
def write_images(
    sampler: Sampler,
    count: int,
    output_dir: str,
    seed: int = 0,
    overwrite: bool = False,
    progress: TextIO | None = sys.stderr,
) -> list[str]:
    """Writes `count` PNGs and grid.png, block by block; returns their paths (grid.png last).

    Images are generated and written `sampler.batch_size` at a time, so memory does
    not grow with `count`, with a progress line on `progress`. Image i depends only
    on (generator, seed, i): its latent is row i of one stateless draw (a prefix of a
    longer draw is the same), and it is always computed in the same full block. So a
    run stopped by Ctrl-C (GenerationInterrupted: the files written are kept) is
    continued by the same call: an output folder whose generate.json names the same
    seed and generator keeps its existing images and writes only the missing ones.
    Existing files of another seed or generator are refused unless `overwrite`.
    """
    names = [image_name(seed, i) for i in range(count)] + [GRID_FILE]
    paths = [os.path.join(output_dir, name) for name in names]
    marker = {"seed": seed, "block": sampler.batch_size, "generator": generator_fingerprint(sampler.generator)}
    marker_path = os.path.join(output_dir, MARKER_FILE)
    previous = _read_marker(marker_path)
    same_images = previous is not None and {k: previous.get(k) for k in ("seed", "generator")} == {
        k: marker[k] for k in ("seed", "generator")
    }
    if same_images and not overwrite:
        marker["block"] = int(previous.get("block", marker["block"]))  # same blocks: bit-identical images
    else:
        clashes = [p for p in paths if os.path.exists(p)]
        if clashes and not overwrite:
            raise UserError(
                f"{len(clashes)} output files already exist in {output_dir} (e.g. {os.path.basename(clashes[0])}) "
                "and were not written by this generator with --seed "
                f"{seed}; choose another --output or pass --overwrite"
            )
    meter = _Progress(count, progress)
    written = 0

    def present() -> str:
        there = sum(os.path.exists(p) for p in paths[:-1])
        return f"{there} of {count} images are in {output_dir} ({written} written now)"

    try:
        os.makedirs(output_dir, exist_ok=True)
        _remove_partial_files(output_dir)
        run_folder.write_json(marker_path, marker)
        keep_existing = same_images and not overwrite
        block = marker["block"]
        blocks = -(-count // block)
        latents = sampler.latents(blocks * block, seed)  # padded to whole blocks; ~40 MB per 100k at z_dim 100
        grid_count = min(count, GRID_COUNT)
        grid = np.zeros((grid_count, sampler.image_size, sampler.image_size, 3), np.uint8)
        for k in range(blocks):
            start, stop = k * block, min((k + 1) * block, count)
            missing = [i for i in range(start, stop) if not (keep_existing and os.path.exists(paths[i]))]
            meter.done += stop - start - len(missing)
            if missing:
                images = data.to_uint8(sampler._forward(tf.constant(latents[start : start + block], tf.float32)))
                for i in missing:
                    _save_png(paths[i], images[i - start])
                    written += 1
                    meter.done += 1
                    meter.made += 1
            for i in range(start, min(stop, grid_count)):  # the grid's first images: from memory or their files
                grid[i] = images[i - start] if missing else _load_png(paths[i])
            meter.update()
        meter.close()
        _save_png(paths[-1], run_folder.image_grid(grid))
    except KeyboardInterrupt:
        meter.close()
        _remove_partial_files(output_dir)
        raise GenerationInterrupted(
            f"interrupted: {present()}; to write the rest, run the same command with --output {output_dir} "
            f"(same --seed {seed}: the existing images are kept and the missing ones are the same images)",
            written,
        ) from None
    except OSError as error:  # a read-only or full disk, a folder not ours to write
        meter.close()
        _remove_partial_files(output_dir)
        disk = output_dir if os.path.isdir(output_dir) else os.path.dirname(os.path.abspath(output_dir))
        raise UserError(
            f"could not write {error.filename or output_dir}: {error.strerror or error} ({run_folder.free_space(disk)}); "
            f"{present()}; to write the rest, make room (or choose another --output) and run the same command"
        ) from None
    return paths


def _read_marker(path: str) -> dict | None:
    try:
        return run_folder.read_json(path)
    except (OSError, ValueError):
        return None


def _save_png(path: str, image: np.ndarray) -> None:
    """Writes via a hidden partial file, so an interrupted write never leaves a truncated PNG."""
    from PIL import Image

    folder, name = os.path.split(path)
    partial = os.path.join(folder, f".{name}.partial")
    Image.fromarray(image).save(partial, format="PNG")
    os.replace(partial, path)


def _load_png(path: str) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def _remove_partial_files(folder: str) -> None:
    for name in os.listdir(folder) if os.path.isdir(folder) else []:
        if name.startswith(".") and name.endswith(".png.partial"):
            os.remove(os.path.join(folder, name))


class _Progress:
    """"generate: 1,234/100,000 images (85.3/s, 19m 12s left)" on a stream: in place on a
    terminal, otherwise a line every 10 s; always a last line."""

    def __init__(self, total: int, stream: TextIO | None):
        self.total, self.stream = total, stream
        self.done = 0  # images present, written now or kept from before
        self.made = 0  # images written by this call (the rate)
        self.tty = bool(stream is not None and getattr(stream, "isatty", lambda: False)())
        self.start = self.last = time.monotonic()

    def _line(self) -> str:
        elapsed = time.monotonic() - self.start
        rate = self.made / elapsed if elapsed > 0 else 0.0
        if self.done >= self.total:
            eta = f"done in {_minutes(elapsed)}"
        else:
            eta = f"{_minutes((self.total - self.done) / rate)} left" if rate > 0 else "time left unknown"
        return f"generate: {self.done:,}/{self.total:,} images ({rate:.1f}/s, {eta})"

    def update(self) -> None:
        now = time.monotonic()
        if self.stream is not None and now - self.last >= (0.5 if self.tty else 10.0):
            self.last = now
            self._emit()

    def _emit(self) -> None:
        if self.tty:
            self.stream.write("\r" + self._line() + "\x1b[K")
        else:
            self.stream.write(self._line() + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.stream is None:
            return
        self._emit()
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


def _minutes(seconds: float) -> str:
    return f"{int(seconds // 60)}m {int(seconds % 60):02d}s"

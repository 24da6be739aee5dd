"""Using a trained generator: load it from a run folder and write images.

A `Sampler` wraps a generator with its latent distribution; `sample_uint8(n, seed)`
is deterministic in `seed`, which is what `--seed`, the web page's seed box and
the evaluation code rely on.
"""

from __future__ import annotations

import os

import keras
import numpy as np
import tensorflow as tf

from illustration_gan import UserError, data, run_folder
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


def load_sampler(run_dir: str = "", checkpoint: str = "", run_root: str = "runs") -> Sampler:
    """From `generator.keras` of a run, or from a training checkpoint."""
    if checkpoint:
        return Sampler(_generator_from_checkpoint(checkpoint))
    run_dir = run_folder.resolve_run_dir(run_dir, run_root)
    path = os.path.join(run_dir, run_folder.GENERATOR_FILE)
    if not os.path.exists(path):
        raise UserError(f"{run_dir} has no {run_folder.GENERATOR_FILE} yet (it is written after the first epoch)")
    import illustration_gan.networks  # noqa: F401  (registers the custom classes)

    return Sampler(keras.saving.load_model(path, compile=False))


def _generator_from_checkpoint(checkpoint: str) -> Generator:
    """`checkpoint` is a run folder's checkpoints/ckpt-N prefix (or the folder: newest)."""
    if os.path.isdir(checkpoint):
        latest = tf.train.latest_checkpoint(checkpoint)
        if latest is None:
            raise UserError(f"no checkpoint in {checkpoint}")
        checkpoint = latest
    run_dir = os.path.dirname(os.path.dirname(os.path.abspath(checkpoint)))
    config = run_folder.read_config(run_dir)
    generator = build_networks(config.model).generator
    tf.train.Checkpoint(generator=generator).restore(checkpoint).expect_partial()
    return generator


def next_output_dir(run_dir: str) -> str:
    existing = [n for n in os.listdir(run_dir) if n.startswith("generated-")] if os.path.isdir(run_dir) else []
    numbers = [int(n.split("-")[1]) for n in existing if n.split("-")[1].isdigit()]
    return os.path.join(run_dir, f"generated-{max(numbers, default=-1) + 1:03d}")


def write_images(sampler: Sampler, count: int, output_dir: str, seed: int = 0, overwrite: bool = False) -> list[str]:
    """Writes `count` PNGs and grid.png; refuses to replace existing files unless `overwrite`."""
    names = [f"seed{seed:04d}-{i:06d}.png" for i in range(count)] + ["grid.png"]
    paths = [os.path.join(output_dir, name) for name in names]
    clashes = [p for p in paths if os.path.exists(p)]
    if clashes and not overwrite:
        raise UserError(
            f"{len(clashes)} output files already exist in {output_dir} (e.g. {os.path.basename(clashes[0])}); "
            "choose another --output or pass --overwrite"
        )
    os.makedirs(output_dir, exist_ok=True)
    images = sampler.sample_uint8(count, seed)
    for path, image in zip(paths, images):
        run_folder.save_png(path, image)
    run_folder.save_png(paths[-1], run_folder.image_grid(images[: min(count, 100)]))
    return paths

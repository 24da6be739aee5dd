"""Evaluating runs and datasets with the metrics package, and recording the results.

- `evaluate_run`: FID, KID, precision and recall of a run's generator against
  real images, appended to the run's `metric-fid.jsonl`.
- `compare_folders`: the same metrics between two image folders (no generator),
  e.g. two disjoint halves of a dataset: the floor no model can beat at that count.
- `nearest_picture`: IllustrationGAN's overfitting check as a picture: generated
  faces on top, their nearest training images (pixel MSE, or Inception features) below.
- `FIDMonitor`: a training callback that evaluates every N epochs, or by default
  within a share of the run's time (FID on 1,000 samples), and keeps the generator
  with the best score as `generator-best.keras` beside the newest, and its
  checkpoint in `checkpoints-best/`.
"""

from __future__ import annotations

import os
import time

import numpy as np
from absl import logging

from illustration_gan import UserError, data, generate, metrics, run_folder
from illustration_gan.training.callbacks import Callback

METRIC_FILE = "metric-fid.jsonl"


def _extractor(fid_weights: str | None) -> metrics.FeatureExtractor:
    try:
        return metrics.FeatureExtractor(fid_weights)
    except (metrics.FIDWeightsNotFound, metrics.FIDWeightsInvalid) as error:
        raise UserError(str(error)) from None


_noted: set = set()  # the counts whose FID note was shown (a FIDMonitor scores the same counts every time)


def _check_counts(num_real: int, num_fake: int) -> None:
    """One line refusing sets too small to score, and once a note on FID below 2049 images
    (metrics.sample_count_note); before any generated image is made."""
    try:
        note = metrics.sample_count_note(num_real, num_fake)
    except metrics.TooFewSamples as error:
        raise UserError(str(error)) from None
    if note and (num_real, num_fake) not in _noted:
        _noted.add((num_real, num_fake))
        logging.warning(note)


def _real_features(path: str, image_size: int, num_real: int, extractor, cache_dir) -> np.ndarray:
    if not path:
        raise UserError("evaluation needs the real images: pass --path")
    try:
        return metrics.real_features(path, image_size, num_real, extractor, cache_dir)
    except FileNotFoundError as error:
        raise UserError(str(error)) from None


def evaluate_sampler(sampler, path: str, num_samples: int, num_real: int, extractor, cache_dir=None, seed=0) -> dict:
    real = _real_features(path, sampler.image_size, num_real, extractor, cache_dir)
    return score_sampler(sampler, real, num_samples, extractor, seed)


def score_sampler(sampler, real: np.ndarray, num_samples: int, extractor, seed=0) -> dict:
    """FID, KID, precision and recall of `num_samples` images of `sampler` against features `real`."""
    _check_counts(len(real), num_samples)
    fake = metrics.generated_features(sampler.sample_uint8, num_samples, extractor, seed=seed)
    return {**metrics.compute_all(real, fake), "num_real": len(real)}


def evaluate_run(
    run_dir: str,
    path: str = "",
    num_samples: int = 5000,
    num_real: int = 5000,
    fid_weights: str | None = None,
    cache_dir: str | None = None,
    seed: int = 0,
) -> dict:
    """Metrics of the run's generator.keras; appended to metric-fid.jsonl and returned."""
    path = path or run_folder.dataset_path(run_dir)
    extractor = _extractor(fid_weights)
    sampler = generate.load_sampler(run_dir)
    started = time.time()
    scores = evaluate_sampler(sampler, path, num_samples, num_real, extractor, cache_dir, seed)
    options = run_folder.read_json(os.path.join(run_dir, run_folder.OPTIONS_FILE))
    if options.get("dataset", {}).get("builtin_toy_faces"):  # known attributes: measure mode coverage too
        from illustration_gan.metrics import coverage

        toy = coverage.evaluate_coverage(sampler, num_samples=min(num_samples, 4800), seed=seed)
        scores.update({f"toy_{k}": toy[k] for k in ("modes_covered", "coverage", "kl_to_uniform")})
    stats = run_folder.read_jsonl(os.path.join(run_dir, run_folder.STATS_FILE))
    record = {
        **scores,
        "epoch": stats[-1]["epoch"] if stats else 0,
        "generator": run_folder.GENERATOR_FILE,
        "real_path": path,
        "num_samples": num_samples,
        "seconds": time.time() - started,
        "wall_time": time.time(),
    }
    run_folder.append_jsonl(os.path.join(run_dir, METRIC_FILE), record)
    return record


def compare_folders(path_a: str, path_b: str, image_size: int, num: int, fid_weights=None, cache_dir=None) -> dict:
    """FID/KID/precision/recall of folder B's images against folder A's."""
    extractor = _extractor(fid_weights)
    real = _real_features(path_a, image_size, num, extractor, cache_dir)
    other = _real_features(path_b, image_size, num, extractor, cache_dir)
    _check_counts(len(real), len(other))
    return {**metrics.compute_all(real, other), "num_real": len(real), "num_compared": len(other)}


def refuse_existing(*outputs: str) -> None:
    """A UserError naming the first of `outputs` that exists: outputs are never overwritten."""
    for output in outputs:
        if os.path.exists(output):
            raise UserError(f"{output} already exists; choose another --output")


def nearest_picture(
    run_dir: str,
    path: str,
    output: str,
    count: int = 8,
    k: int = 5,
    metric: str = "mse",
    max_real: int = 10_000,
    seed: int = 0,
    fid_weights: str | None = None,
    cache_dir: str | None = None,
) -> str:
    """Writes the nearest-neighbour check as a PNG and returns its path."""
    refuse_existing(output)  # before minutes of feature extraction, not after
    sampler = generate.load_sampler(run_dir)
    fakes = sampler.sample_uint8(count, seed)
    reals = np.concatenate(list(data.image_batches_uint8(path, sampler.image_size, 256, limit=max_real)))
    if metric == "inception":
        extractor = _extractor(fid_weights)
        # The features of the same reals in the same order, from the cache evaluation uses: a second
        # run at this size (or a second seed) does not recompute them.
        real = _real_features(path, sampler.image_size, max_real, extractor, cache_dir)
        if len(real) != len(reals):
            raise UserError(f"{path} changed while it was read ({len(real)} features for {len(reals)} images)")
        index = metrics.nearest_neighbours(extractor.features([fakes]), real, k=k, metric="inception")
    else:
        index = metrics.nearest_neighbours(fakes, reals, k=k, metric="mse")
    picture = metrics.nearest_neighbour_grid(fakes, reals, index)
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    run_folder.save_png(output, picture)
    return output


# The watch a training run keeps without being asked (`--fid_every -1`, the default): FID on 1,000
# samples, at most 5% of the run's time. On 7 generators it ranked as FID5k does (Spearman 0.988; KID on
# 1,000 samples 0.893, as KID5k itself ranks) and ordered every pair 5% apart as FID5k does, at a bias of
# +14 to +16 points (experiments/cheap_signal.py; docs/experiments.md, "A cheap signal for long runs").
# ILLUSTRATION_GAN_WATCH_SHARE sets the share.
WATCH_SAMPLES = 1000
WATCH_SHARE = 0.05
WATCH_SHARE_ENV = "ILLUSTRATION_GAN_WATCH_SHARE"
FIRST_COST_GUESS = 30.0  # seconds one watch evaluation takes before one was timed (1,000 samples, 2-core CPU)


def watch_share() -> float:
    """The share of a run's time the default watch may take: $ILLUSTRATION_GAN_WATCH_SHARE or WATCH_SHARE."""
    text = os.environ.get(WATCH_SHARE_ENV, "")
    try:
        share = float(text) if text else WATCH_SHARE
    except ValueError:
        share = -1.0
    if not 0 < share <= 1:
        raise UserError(f"{WATCH_SHARE_ENV}={text} is not a share of the run's time in (0, 1]")
    return share


class FIDMonitor(Callback):
    """A score of the sampling generator into stats.jsonl and metric-fid.jsonl: every `every`
    epochs (`--fid_every N`), or, with `share` and no `every`, at the first epoch end after which
    evaluating again keeps all evaluations within `share` of the run's time (the default watch).
    The generator with the lowest score so far is kept as generator-best.keras and its epoch's
    checkpoint in checkpoints-best/ (`--TYPE generate --best`, `serve --best`); the run ends with
    a line naming the best epoch."""

    def __init__(self, run_dir: str, path: str, every: int | None, num_samples: int, num_real: int,
                 fid_weights: str | None = None, cache_dir: str | None = None, share: float | None = None):
        self.run_dir, self.path, self.every, self.share = run_dir, path, every, share
        self.num_samples, self.num_real = num_samples, num_real
        self.fid_weights, self.cache_dir, self.real = fid_weights, cache_dir, None
        # An explicit --fid_every fails before training starts, not after an hour; the watch builds
        # Inception at its first evaluation, which a short run never reaches.
        self.extractor = _extractor(fid_weights) if every else None
        self.key = f"fid{metrics.count_label(num_samples)}"
        previous = [r for r in run_folder.read_jsonl(os.path.join(run_dir, METRIC_FILE)) if self.key in r]
        best = min(previous, key=lambda r: r[self.key], default={})
        self.best, self.best_epoch = best.get(self.key, float("inf")), best.get("epoch")
        self.new_best = False
        self.cost, self.since = FIRST_COST_GUESS, time.time()

    def on_train_begin(self, trainer) -> None:
        self.since = time.time()

    def due(self, epoch: int) -> bool:
        if self.every:
            return epoch % self.every == 0
        return time.time() - self.since >= self.cost * (1 - self.share) / self.share

    def on_epoch_end(self, trainer, epoch: int, record: dict) -> None:
        self.new_best = False
        if not self.due(epoch):
            return
        if self.extractor is None:
            self.extractor = _extractor(self.fid_weights)
        sampler = generate.Sampler(trainer.sampling_generator)
        if self.real is None:  # read (or computed and cached) once: not part of an evaluation's cost
            self.real = _real_features(self.path, sampler.image_size, self.num_real, self.extractor, self.cache_dir)
        started = time.time()
        scores = score_sampler(sampler, self.real, self.num_samples, self.extractor)
        self.since = time.time()
        self.cost = self.since - started
        record.update(scores)
        self.new_best = scores[self.key] < self.best
        if self.new_best:
            self.best, self.best_epoch = scores[self.key], epoch
            best_path = os.path.join(self.run_dir, run_folder.BEST_GENERATOR_FILE)
            run_folder.save_model(trainer.sampling_generator, best_path)
        run_folder.append_jsonl(
            os.path.join(self.run_dir, METRIC_FILE),
            {**scores, "epoch": epoch, "step": record["step"], "checkpoint": record.get("checkpoint"),
             "best": self.new_best, "num_samples": self.num_samples, "seconds": self.cost,
             "wall_time": time.time()},
        )
        note = f"  (best so far: saved {run_folder.BEST_GENERATOR_FILE})" if self.new_best else ""
        print(f"  {self.key} {scores[self.key]:.2f}{note}", flush=True)

    def on_checkpoint(self, trainer, epoch: int, prefix: str) -> None:
        if self.new_best:
            run_folder.keep_checkpoint(prefix, os.path.join(self.run_dir, run_folder.BEST_CHECKPOINT_DIR))

    def on_train_end(self, trainer) -> None:
        if self.best_epoch is not None:
            print(f"best {self.key} {self.best:.2f} at epoch {self.best_epoch}: "
                  f"{os.path.join(self.run_dir, run_folder.BEST_GENERATOR_FILE)} (--best with generate and serve)",
                  flush=True)

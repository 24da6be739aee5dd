"""The FID / KID / precision / recall floor and ceiling on the shared anime faces.

What does a perfect generator score? Two disjoint halves of the real faces (3000 vs 3000
at 64x64, the evaluation resolution) are samples of the same distribution, so their
scores are the best a generator can reach with that many samples: FID is biased upwards
for finite samples (Heusel et al. 2017; Binkowski et al. 2018), KID is not. Faces against
uniform noise show the other end of the scale. With --blur_to S, the second half is also
scored after a round trip through SxS pixels (bilinear down and up): real faces that are
only blurrier, which shows how much of a generator's FID and recall blur alone costs.
Also prints the feature-extraction speed.

    python bench/measure_fid_floor.py [--faces ../shared/data/anime_faces] [--weights FILE]
        [--image_size 64] [--half 3000] [--noise 3000] [--blur_to 32,48] [--cache_dir DIR]

Reads the shared data in place; real features are cached (default
~/.cache/illustration_gan/fid_features), so a second run only recomputes the noise and
the blurred copies.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from illustration_gan import data, metrics  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--faces", default=str(SHARED / "anime_faces"))
    parser.add_argument("--weights", default=None, help="FID weights npz (default: shared data, then the resolver)")
    parser.add_argument("--image_size", type=int, default=64)
    parser.add_argument("--half", type=int, default=3000, help="images in each half")
    parser.add_argument("--noise", type=int, default=3000, help="uniform-noise images")
    parser.add_argument("--blur_to", default="", help="comma list of sizes for blurred copies of the second half")
    parser.add_argument("--batch_size", type=int, default=50)
    parser.add_argument("--cache_dir", default=None)
    args = parser.parse_args()

    weights = args.weights
    if weights is None and (SHARED / "fid_inception_v3_2015-12-05.npz").is_file():
        weights = str(SHARED / "fid_inception_v3_2015-12-05.npz")
    files = data.list_image_files(args.faces)
    if len(files) < 2 * args.half:
        sys.exit(f"{args.faces} has {len(files)} images, need {2 * args.half}")
    first, second = files[: args.half], files[args.half : 2 * args.half]

    extractor = metrics.FeatureExtractor(weights, batch_size=args.batch_size)
    print(f"weights: {extractor.weights_path}")

    # Speed of the network alone (decoding excluded), after one warm-up batch.
    probe = np.random.default_rng(1).integers(0, 256, (args.batch_size, args.image_size, args.image_size, 3), np.uint8)
    extractor.features([probe])
    start = time.monotonic()
    extractor.features([probe] * 4)
    network_rate = 4 * args.batch_size / (time.monotonic() - start)

    start = time.monotonic()
    real_a = metrics.real_features(first, args.image_size, None, extractor, args.cache_dir)
    real_b = metrics.real_features(second, args.image_size, None, extractor, args.cache_dir)
    real_seconds = time.monotonic() - start

    def uniform_noise(n: int, seed: int) -> np.ndarray:
        return np.random.default_rng(seed).integers(0, 256, (n, args.image_size, args.image_size, 3), np.uint8)

    start = time.monotonic()
    noise = metrics.generated_features(uniform_noise, args.noise, extractor, batch_size=100)
    noise_rate = args.noise / (time.monotonic() - start)

    start = time.monotonic()
    halves = metrics.compute_all(real_a, real_b)
    halves_seconds = time.monotonic() - start
    against_noise = metrics.compute_all(real_a, noise)

    print(f"\nfeature extraction, batch {args.batch_size}, 299x299 on this machine:")
    print(f"  network only:              {network_rate:6.1f} images/s")
    print(f"  noise (generate+extract):  {noise_rate:6.1f} images/s")
    print(f"  real faces (decode+extract, or cache): {2 * args.half / real_seconds:6.1f} images/s")
    print(f"  scores of one pair (FID+KID+P/R): {halves_seconds:.1f} s")
    print(f"\n{args.half} vs {args.half} disjoint halves of the faces at {args.image_size}px (the floor):")
    for key, value in halves.items():
        print(f"  {key:16s} {value:12.6g}")
    print(f"\n{args.half} faces vs {args.noise} uniform-noise images (the ceiling):")
    for key, value in against_noise.items():
        print(f"  {key:16s} {value:12.6g}")
    for size in (int(s) for s in args.blur_to.split(",") if s):
        batches = (_round_trip(b, size) for b in data.image_batches_uint8(second, args.image_size, 100))
        blurred = metrics.compute_all(real_a, extractor.features(batches, total=args.half, desc=f"blurred to {size}px"))
        print(f"\n{args.half} faces vs the other {args.half} blurred through {size}x{size} pixels:")
        for key, value in blurred.items():
            print(f"  {key:16s} {value:12.6g}")


def _round_trip(images: np.ndarray, size: int) -> np.ndarray:
    """Bilinear down to size x size and back up: the same faces with less detail."""
    import tensorflow as tf

    full = images.shape[1]
    small = tf.image.resize(tf.cast(images, tf.float32), (size, size), antialias=True)
    return np.clip(np.round(tf.image.resize(small, (full, full)).numpy()), 0, 255).astype(np.uint8)


if __name__ == "__main__":
    main()

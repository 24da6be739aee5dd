"""Why is a run's recall low? Bunched samples (collapse) or samples beside the data (fidelity).

Generates --num_samples images with the run's generator.keras and compares their
Inception features with as many of the real faces (common.manifold_distances), then
asks whether the samples are beside the data by an offset or scale they all share
(common.moment_matched_recall), and how the samples' pixels differ from the faces'
(contrast, saturation, sharpness of 1,000 of each):

    python -m experiments.recall_diagnosis RUN_DIR [--num_samples 2000] [--faces DIR] [--weights FILE]
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from experiments.common import manifold_distances, moment_matched_recall, run_arguments
from illustration_gan import data, generate, metrics


def main() -> None:
    args = run_arguments(__doc__).parse_args()

    extractor = metrics.FeatureExtractor(args.weights)
    sampler = generate.load_sampler(args.run_dir)
    real = metrics.real_features(args.faces, sampler.image_size, 5000, extractor, None)[: args.num_samples]
    fake = metrics.generated_features(sampler.sample_uint8, args.num_samples, extractor)
    precision, recall = metrics.precision_recall(real, fake)
    d = manifold_distances(real, fake)
    spread = {name: float(f.var(axis=0, ddof=1).sum()) for name, f in (("real", real), ("fake", fake))}  # trace of cov
    print("| run | trace cov real / fake | 3-NN radius real / fake | real to nearest real / fake | precision | recall |")
    print("| --- | --- | --- | --- | --- | --- |")
    print(f"| {Path(args.run_dir).name} | {spread['real']:.1f} / {spread['fake']:.1f} | "
          f"{d['real_radius']:.2f} / {d['fake_radius']:.2f} | {d['real_to_real']:.2f} / {d['real_to_fake']:.2f} | "
          f"{precision:.3f} | {recall:.3f} |")
    # Is the gap an offset or scale that all samples share? Move the fakes onto the reals' moments.
    matched = moment_matched_recall(real, fake)
    print()
    print("| run | FID | its mean term | recall | recall, fakes moved to the real mean | ... and per-feature sd |")
    print("| --- | --- | --- | --- | --- | --- |")
    print(f"| {Path(args.run_dir).name} | {metrics.fid_from_features(real, fake):.1f} | {matched['mean_term']:.1f} | "
          f"{recall:.3f} | {matched['recall_mean_matched']:.3f} | {matched['recall_moments_matched']:.3f} |")

    print()
    print("| images | contrast (per-image pixel sd) | RGB sd | saturation (HSV S, 0-255) | sharpness (mean abs. gradient) |")
    print("| --- | --- | --- | --- | --- |")
    reals = np.concatenate(list(data.image_batches_uint8(args.faces, sampler.image_size, 250, limit=1000)))
    for name, images in (("real", reals), ("generated", sampler.sample_uint8(1000, 1))):
        stats = pixel_statistics(images)
        print(f"| {name} | {stats['contrast']:.1f} | {' / '.join(f'{v:.0f}' for v in stats['rgb_sd'])} | "
              f"{stats['saturation']:.1f} | {stats['sharpness']:.1f} |")


def pixel_statistics(images: np.ndarray) -> dict:
    """Contrast, colour spread, saturation and sharpness of uint8 RGB images (n, h, w, 3)."""
    x = images.astype(np.float32)
    brightest, darkest = x.max(-1), x.min(-1)
    saturation = np.where(brightest > 0, 255 * (brightest - darkest) / np.maximum(brightest, 1), 0)  # as OpenCV's HSV
    gray = x.mean(-1)
    gradient = (np.abs(np.diff(gray, axis=1)).mean() + np.abs(np.diff(gray, axis=2)).mean()) / 2
    return {"contrast": float(x.std(axis=(1, 2, 3)).mean()), "rgb_sd": x.std(axis=(0, 1, 2)),
            "saturation": float(saturation.mean()), "sharpness": float(gradient)}


if __name__ == "__main__":
    main()

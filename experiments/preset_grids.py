"""Every preset after the same wall-clock budget on the shared faces, as one captioned picture.

  python -m experiments.preset_grids --minutes 5 [--presets fast,dcgan,...] [--out docs/preset_grids.jpg]

Trains each preset (64x64, the 6,000 shared faces, seed 0, `--precision auto`) for
--minutes of training on one CPU core (`taskset`), two presets at a time on a 2-core
machine, so every preset gets the same core-minutes; then samples 16 faces from each
run's newest checkpoint (the weight average where the preset keeps one) on the same
seed and writes one figure: a row per preset,
captioned with the images it saw in that budget. Minutes of training exclude start-up
(the `--max_minutes` clock starts with the first step).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

from experiments.common import FACES, ROOT

PRESETS = "fast,dcgan,wgan,dense,pokemon,pokemon-wgan,keras-margin,illustration"


def train(preset: str, core: int, minutes: float, run_dir: str, seed: int) -> subprocess.Popen:
    command = ["taskset", "-c", str(core), sys.executable, "train.py", "--TYPE", "train", "--path", str(FACES),
               "--image_size", "64", "--model", preset, "--epochs", "100000", "--max_minutes", f"{minutes:g}",
               "--run_dir", run_dir, "--seed", str(seed)]
    print("+", " ".join(command), flush=True)
    log = open(run_dir + ".log", "w")
    return subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)


def images_seen(run_dir: str) -> tuple[int, str]:
    import tensorflow as tf

    from illustration_gan import run_folder

    config = run_folder.read_config(run_dir)
    options = run_folder.read_json(os.path.join(run_dir, run_folder.OPTIONS_FILE))
    latest = tf.train.latest_checkpoint(os.path.join(run_dir, "checkpoints"))
    step = int(tf.train.load_variable(latest, "step/.ATTRIBUTES/VARIABLE_VALUE"))
    return step * config.training.batch_size, options["config"]["precision"]


def sampling_generator(run_dir: str):
    """The generator a run samples with (its weight average where it keeps one), from its newest checkpoint."""
    import tensorflow as tf

    from illustration_gan import run_folder
    from illustration_gan.networks import build_networks

    config = run_folder.read_config(run_dir)
    generator = build_networks(config.model).generator
    key = "ema_generator" if config.training.ema_kimg > 0 else "generator"
    latest = tf.train.latest_checkpoint(os.path.join(run_dir, "checkpoints"))
    tf.train.Checkpoint(**{key: generator}).restore(latest).expect_partial()
    return generator


def figure(rows: list[tuple[str, str]], out: str, minutes: float, count: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from illustration_gan import generate, run_folder

    fig, axes = plt.subplots(len(rows), 1, figsize=(count * 0.62 + 0.4, len(rows) * 0.95 + 0.5))
    for ax, (preset, run_dir) in zip(axes, rows):
        sampler = generate.Sampler(sampling_generator(run_dir))
        images = sampler.images_from_latents(sampler.latents(count, seed=1))
        seen, policy = images_seen(run_dir)
        ax.imshow(run_folder.image_grid(images, columns=count))
        ax.set_axis_off()
        ax.set_title(f"{preset}: {seen:,} images seen ({seen / 6000:.1f} epochs), {policy}", fontsize=8, loc="left")
    fig.suptitle(f"Each preset after {minutes:g} minutes of training on one CPU core (64x64, seed 0)", fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=80, pil_kwargs={"quality": 85})  # a JPEG of ~150 KB, not a 1.4 MB PNG
    print(f"wrote {out}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=5)
    parser.add_argument("--presets", default=PRESETS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--run_root", default=str(ROOT / "runs" / "preset-grids"))
    parser.add_argument("--out", default=str(ROOT / "docs" / "preset_grids.jpg"))
    parser.add_argument("--count", type=int, default=16, help="faces per preset")
    args = parser.parse_args()
    presets = [p for p in args.presets.split(",") if p]
    if os.path.exists(args.out):
        print(f"{args.out} exists; not overwritten (move it away first)", file=sys.stderr)
        return 1
    os.makedirs(args.run_root, exist_ok=True)
    rows = []
    for first in range(0, len(presets), 2):
        pair = presets[first:first + 2]
        dirs = [os.path.join(args.run_root, preset) for preset in pair]
        running = [train(p, core, args.minutes, d, args.seed) for core, (p, d) in enumerate(zip(pair, dirs))]
        if any(process.wait() != 0 for process in running):
            print(f"a run of {pair} failed; see {args.run_root}/*.log", file=sys.stderr)
            return 1
        rows += list(zip(pair, dirs))
    figure(rows, args.out, args.minutes, args.count)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Quality against minutes of training along one run: FID, precision and recall of its snapshots.

A run trained with `--keep_checkpoints` above its number of epochs keeps every epoch's
checkpoint. For each of --minutes this scores the EMA generator (the live one in a run
without EMA) of the snapshot nearest
that many minutes of training (minutes as `--max_minutes` counts them, across resumes:
`common.training_minutes`), all on the same z, appends each score to the run's
metric-curve.jsonl and draws the curve with a row of samples per snapshot (fixed z), so
the numbers and the faces behind them sit in one picture (issue 24's long-run curve).

    python -m experiments.quality_curve RUN_DIR [--minutes 10,20,40,60,120,180] [--num_samples 5000]
        [--picture RUN_DIR/quality-curve.png]

A minute the run has not reached (more than 5% past its last record) is skipped with a note.
A snapshot already scored in metric-curve.jsonl (same checkpoint, generator and sample count)
is read back rather than scored again, so the curve of a run still training can be built in
parts: score the early minutes now, the later ones when the run gets there.
"""

from __future__ import annotations

import os
import sys

import numpy as np

from experiments.common import new_output, read_run, run_arguments, sampler, training_minutes
from experiments.weight_averaging import averaged_generator
from illustration_gan import metrics, run_folder

SAMPLES_PER_ROW = 10


def snapshots_at(records: list[dict], kept: set[str], wanted: list[float]) -> list[tuple[float, dict]]:
    """(minutes, record) of the kept checkpoint nearest each wanted minute, in order, without repeats.

    `records` are a run's stats.jsonl records (each names its epoch's checkpoint); a wanted
    minute more than 5% past the last record is not reached and left out.
    """
    minutes = training_minutes(records)
    candidates = [(m, r) for m, r in zip(minutes, records) if r.get("checkpoint") in kept]
    chosen = []
    for want in wanted:
        if not candidates or want > 1.05 * minutes[-1]:
            continue
        pick = min(candidates, key=lambda c: abs(c[0] - want))
        if not chosen or chosen[-1][1] is not pick[1]:
            chosen.append(pick)
    return chosen


def scored_before(curve_file: str) -> dict[tuple, dict]:
    """The points metric-curve.jsonl already holds, by (checkpoint, generator, sample count)."""
    return {(p["checkpoint"], p["generator"], p["num_samples"]): p for p in run_folder.read_jsonl(curve_file)}


def draw(points: list[dict], rows: list[np.ndarray], label: str, title: str, path: str) -> None:
    """FID (left axis) and precision / recall (right axis) against minutes, samples per snapshot below."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    minutes = [p["minutes"] for p in points]
    figure = plt.figure(figsize=(10, 3.2 + 0.95 * len(rows)))
    grid = figure.add_gridspec(1 + len(rows), 1, height_ratios=[3.2] + [0.95] * len(rows), hspace=0.25)
    axis = figure.add_subplot(grid[0])
    axis.plot(minutes, [p["fid"] for p in points], "o-", color="C0")
    for m, p in zip(minutes, points):
        axis.annotate(f"{p['fid']:.1f}", (m, p["fid"]), textcoords="offset points", xytext=(0, 6), ha="center")
    axis.set_xscale("log")
    axis.set_xticks(minutes, [f"{m:.0f}" for m in minutes])
    axis.minorticks_off()
    axis.set_xlabel("minutes of training")
    axis.set_ylabel(f"FID{label} (lower is better)", color="C0")
    axis.set_title(title, fontsize=9)
    other = axis.twinx()
    other.plot(minutes, [p["precision"] for p in points], "s--", color="C1", label="precision")
    other.plot(minutes, [p["recall"] for p in points], "^--", color="C2", label="recall")
    other.set_ylim(0, 1)
    other.legend(loc="upper center", fontsize=8)
    for i, (point, row) in enumerate(zip(points, rows)):
        strip = figure.add_subplot(grid[1 + i])
        strip.imshow(row)
        strip.set_xticks([])
        strip.set_yticks([])
        strip.set_ylabel(f"{point['minutes']:.0f} min", rotation=0, ha="right", va="center", fontsize=9)
    figure.savefig(path, dpi=80, bbox_inches="tight")
    plt.close(figure)


def main() -> None:
    parser = run_arguments(__doc__)
    parser.set_defaults(num_samples=5000)
    parser.add_argument("--minutes", default="10,20,40,60,120,180", help="minutes of training to score")
    parser.add_argument("--picture", default="", help="where to draw the curve (default RUN_DIR/quality-curve.png)")
    args = parser.parse_args()
    picture = new_output(args.run_dir, args.picture, "quality-curve.png", "--picture")
    config, records = read_run(args.run_dir)
    prefixes = run_folder.checkpoint_prefixes(os.path.join(args.run_dir, "checkpoints"))
    kept = {os.path.basename(p): p for p in prefixes}
    wanted = [float(m) for m in args.minutes.split(",") if m]
    chosen = snapshots_at(records, set(kept), wanted)
    reached = [round(m) for m, _ in chosen]
    if len(chosen) < len(wanted):
        print(f"scoring the snapshots nearest {reached} minutes; the run's last record is at "
              f"{training_minutes(records)[-1]:.1f} minutes, or its checkpoints are not kept", flush=True)
    extractor = metrics.FeatureExtractor(args.weights)
    real = metrics.real_features(args.faces, config.model.image_size, 5000, extractor, None)
    label = metrics.count_label(args.num_samples)
    part = "ema_generator" if config.training.ema_kimg > 0 else "generator"
    curve_file = os.path.join(args.run_dir, "metric-curve.jsonl")
    scored = scored_before(curve_file)
    points, rows = [], []
    for minutes, record in chosen:
        prefix = kept[record["checkpoint"]]
        sample = sampler(averaged_generator(config.model, [prefix], part, prefix), False)
        point = scored.get((record["checkpoint"], part, args.num_samples))
        if point is None:
            scores = metrics.compute_all(real, metrics.generated_features(sample, args.num_samples, extractor, seed=0))
            point = {"minutes": round(minutes, 2), "step": record["step"], "epoch": record["epoch"],
                     "checkpoint": record["checkpoint"], "generator": part,
                     **{k.replace(label, ""): v for k, v in scores.items()}, "num_samples": args.num_samples}
            run_folder.append_jsonl(curve_file, point)
        else:
            print(f"{record['checkpoint']}: scored before, read from {curve_file}", flush=True)
        points.append(point)
        rows.append(run_folder.image_grid(sample(SAMPLES_PER_ROW, 1), columns=SAMPLES_PER_ROW))
        print(f"{minutes:6.1f} min  step {record['step']:>7}  fid{label} {point['fid']:.1f}  "
              f"precision {point['precision']:.3f}  recall {point['recall']:.3f}", flush=True)
    if not points:
        sys.exit(f"{args.run_dir}: no kept snapshot near {args.minutes} minutes")
    title = (f"{config.preset}, {os.path.basename(os.path.normpath(args.run_dir))}: {part.replace('_', ' ')}, "
             f"{args.num_samples} samples against {os.path.basename(os.path.normpath(args.faces))}")
    draw(points, rows, label, title, picture)
    print(f"\nCommand: `python -m experiments.quality_curve {args.run_dir} --minutes {args.minutes} "
          f"--num_samples {args.num_samples}`\n")
    print(f"| minutes | updates | fid{label} | kid{label} | precision | recall |\n| --- | --- | --- | --- | --- | --- |")
    for p in points:
        print(f"| {p['minutes']:.1f} | {p['step']:,} | {p['fid']:.1f} | {p['kid']:.4f} | {p['precision']:.3f} | {p['recall']:.3f} |")
    print(f"picture: {picture}")


if __name__ == "__main__":
    main()

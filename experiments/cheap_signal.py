"""Is a score on 1,000 samples a signal a long run can watch in place of FID5k? (issue 51 item 1)

FID5k costs about 4 minutes of a 2-core CPU, too much to run often inside a run. For
generators whose FID5k is already recorded (metric-fid.jsonl of paired_budget runs), this
draws --num_fake samples once (z seed 1, not the FID5k's seed 0), cuts their Inception
features into disjoint sets of --chunk, and scores each set against the same 5,000 cached
real features: FID and KID on 1,000 samples, several independent draws per generator.

It prints, per generator, FID5k next to each cheap score's mean and standard deviation over
the draws, and over all generators:
- the Spearman rank correlation of the cheap score with FID5k (of one draw, as a run sees it);
- for every pair of generators whose FID5k differ by at least --gap (a share), how often one
  draw of the cheap score orders the pair as FID5k does: choosing the better of two snapshots
  is what a run keeping its best does.

  python -m experiments.cheap_signal --run_dirs runs/a,runs/b,... [--num_fake 3000 --chunk 1000]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FACES = ROOT.parent / "shared" / "data" / "anime_faces"
WEIGHTS = ROOT.parent / "shared" / "data" / "fid_inception_v3_2015-12-05.npz"


def ranks(values) -> np.ndarray:
    order = np.argsort(values, kind="stable")
    out = np.empty(len(values))
    out[order] = np.arange(len(values))
    return out


def spearman(a, b) -> float:
    return float(np.corrcoef(ranks(a), ranks(b))[0, 1])


def pair_agreement(reference, draws, gap: float) -> tuple[float, int]:
    """Share of (generator pair, draw) where the draw orders the pair as `reference` does, over
    pairs whose reference scores differ by at least `gap` of the smaller; and the pair count."""
    agree, total, pairs = 0, 0, 0
    for i, j in itertools.combinations(range(len(reference)), 2):
        low, high = sorted((reference[i], reference[j]))
        if high < low * (1 + gap):
            continue
        pairs += 1
        sign = np.sign(reference[i] - reference[j])
        for d in range(draws.shape[1]):
            agree += int(np.sign(draws[i, d] - draws[j, d]) == sign)
            total += 1
    return (agree / total if total else float("nan")), pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run_dirs", required=True, help="comma list of run folders with a recorded FID5k")
    parser.add_argument("--num_fake", type=int, default=3000)
    parser.add_argument("--chunk", type=int, default=1000)
    parser.add_argument("--num_real", type=int, default=5000)
    parser.add_argument("--gap", type=float, default=0.05)
    parser.add_argument("--out", default="", help="per-generator scores as JSON, written after each generator; "
                        "generators already in it are not scored again")
    args = parser.parse_args()

    from illustration_gan import generate, metrics

    extractor = metrics.FeatureExtractor(os.environ.get("ILLUSTRATION_GAN_FID_WEIGHTS", str(WEIGHTS)))
    done = json.loads(Path(args.out).read_text()) if args.out and Path(args.out).exists() else []
    rows = []
    for run_dir in filter(None, args.run_dirs.split(",")):
        previous = [r for r in done if r["run_dir"] == run_dir]
        if previous:
            rows.append(previous[0])
            continue
        records = [json.loads(line) for line in Path(run_dir, "metric-fid.jsonl").read_text().splitlines() if line]
        record = next(r for r in reversed(records) if "fid5k" in r)
        sampler = generate.load_sampler(run_dir)
        real = metrics.real_features(str(FACES), sampler.image_size, args.num_real, extractor, None)
        started = time.time()
        fake = metrics.generated_features(sampler.sample_uint8, args.num_fake, extractor, seed=1)
        seconds = time.time() - started
        fids, kids = [], []
        for start in range(0, args.num_fake - args.chunk + 1, args.chunk):
            part = fake[start:start + args.chunk]
            fids.append(metrics.fid_from_features(real, part))
            kids.append(metrics.kernel_inception_distance(real, part)[0])
        row = {"run_dir": run_dir, "fid5k": record["fid5k"], "kid5k": record["kid5k"], "fid_draws": fids,
               "kid_draws": kids, "seconds_per_1000": seconds * 1000 / args.num_fake}
        rows.append(row)
        print(f"{run_dir}: FID5k {row['fid5k']:.1f}, FID1k {np.mean(fids):.1f} +- {np.std(fids):.1f}, "
              f"KID5k {row['kid5k']:.4f}, KID1k {np.mean(kids):.4f} +- {np.std(kids):.4f} "
              f"({row['seconds_per_1000']:.0f} s per 1,000 samples)", flush=True)
        if args.out:
            Path(args.out).write_text(json.dumps(rows + [r for r in done if r not in rows], indent=1))

    fid5k = np.array([r["fid5k"] for r in rows])
    label = f"{args.chunk / 1000:g}k"
    print(f"\n{len(rows)} generators, FID5k {fid5k.min():.1f}-{fid5k.max():.1f}; "
          f"{len(rows[0]['fid_draws'])} draws of {args.chunk} samples each")
    print(f"| score | Spearman with FID5k (one draw, mean over draws) | pairs >= {args.gap:.0%} apart ordered as "
          f"FID5k orders them (one draw) | draw-to-draw std / FID5k range |")
    print("| --- | --- | --- | --- |")
    for name, key in ((f"FID{label}", "fid_draws"), (f"KID{label}", "kid_draws")):
        draws = np.array([r[key] for r in rows])
        rho = np.mean([spearman(draws[:, d], fid5k) for d in range(draws.shape[1])])
        agreement, pairs = pair_agreement(fid5k, draws, args.gap)
        spread = np.mean(draws.std(axis=1)) / (draws.mean(axis=1).max() - draws.mean(axis=1).min())
        print(f"| {name} | {rho:.3f} | {agreement:.1%} of {pairs} pairs | {spread:.3f} |")
    print(f"\nInception features: {np.mean([r['seconds_per_1000'] for r in rows]):.0f} s per 1,000 samples "
          f"(this machine, this load)")


if __name__ == "__main__":
    main()

"""Two recipes side by side at the same wall-clock budget, one CPU core each, paired by seed.

  python -m experiments.paired_budget --minutes 20 --seeds 0,1,2 --model fast \
      --a "--update_order alternating" --b "--update_order simultaneous"

With --epochs N in place of a budget of minutes, both recipes train N epochs however long
that takes (a budget counted in updates does not depend on the machine), e.g. the command
users type first: --epochs 50 --a "--batch_size 64" --b "--batch_size 64 --g_lr ...".

For each seed, recipe A trains pinned to core 0 and recipe B to core 1 at the same
time (`taskset`), so both see the same machine, the same memory traffic and the same
minutes; then both runs are evaluated one after the other with every core
(`bench/quality_budget.py --run_dir`: FID, KID, precision and recall of
--num_samples generated faces against the shared faces). Prints one table row per
run and the per-recipe means. A 2-core machine's 20 minutes on one core is a smaller
budget than 20 minutes on both: compare the two recipes, not these numbers with runs
that had the whole machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

from illustration_gan import run_folder

ROOT = Path(__file__).resolve().parents[1]
FACES = ROOT.parent / "shared" / "data" / "anime_faces"
WEIGHTS = ROOT.parent / "shared" / "data" / "fid_inception_v3_2015-12-05.npz"


def train(core: int, run_dir: Path, minutes: float, epochs: int | None, seed: int,
          flags: list[str]) -> subprocess.Popen:
    budget = ["--epochs", str(epochs)] if epochs else ["--epochs", "100000", "--max_minutes", str(minutes)]
    command = ["taskset", "-c", str(core), sys.executable, "train.py", "--TYPE", "train", "--path", str(FACES),
               "--image_size", "64", *budget, "--run_dir", str(run_dir), "--seed", str(seed), *flags]
    print("+", " ".join(command), flush=True)
    log = open(str(run_dir) + ".log", "w")
    return subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)


def evaluate(run_dir: Path, num_samples: int) -> dict:
    env = {**os.environ, "ILLUSTRATION_GAN_FID_WEIGHTS": os.environ.get("ILLUSTRATION_GAN_FID_WEIGHTS", str(WEIGHTS))}
    subprocess.run([sys.executable, "bench/quality_budget.py", "--run_dir", str(run_dir), "--num_samples",
                    str(num_samples)], cwd=ROOT, check=True, env=env, stdout=subprocess.DEVNULL)
    record = json.loads((run_dir / "metric-fid.jsonl").read_text().splitlines()[-1])
    stats = [json.loads(line) for line in (run_dir / "stats.jsonl").read_text().splitlines() if line.strip()]
    label = next(k for k in record if k.startswith("fid"))[3:]
    # The step of the newest checkpoint, where the clock stopped: generator.keras is saved there too.
    updates = run_folder.checkpoint_step(run_folder.checkpoint_prefixes(str(run_dir / "checkpoints"))[0])
    return {"fid": record["fid" + label], "kid": record["kid" + label], "precision": record["precision" + label],
            "recall": record["recall" + label], "updates": updates, "epochs": stats[-1]["epoch"], "label": label}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=20)
    parser.add_argument("--epochs", type=int, default=None, help="train this many epochs instead of --minutes")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--a", required=True, help="train.py flags of recipe A (core 0)")
    parser.add_argument("--b", required=True, help="train.py flags of recipe B (core 1)")
    parser.add_argument("--num_samples", type=int, default=5000)
    parser.add_argument("--run_root", default=str(ROOT / "runs" / "paired"))
    args, common = parser.parse_known_args()
    root = Path(args.run_root)
    root.mkdir(parents=True, exist_ok=True)
    recipes = {"A": shlex.split(args.a), "B": shlex.split(args.b)}
    rows = []
    for seed in (int(s) for s in args.seeds.split(",")):
        dirs = {name: root / f"seed{seed}-{name}" for name in recipes}
        processes = [train(core, dirs[name], args.minutes, args.epochs, seed, common + flags)
                     for core, (name, flags) in enumerate(recipes.items())]
        if any(p.wait() != 0 for p in processes):
            print(f"a training run of seed {seed} failed; see {root}/*.log", file=sys.stderr)
            return 1
        for name, flags in recipes.items():
            result = evaluate(dirs[name], args.num_samples)
            rows.append((name, seed, " ".join(common + flags), result))
            print(f"| {name} | {seed} | {' '.join(common + flags)} | {result['updates']:,} | {result['fid']:.1f} | "
                  f"{result['kid']:.4f} | {result['precision']:.3f} | {result['recall']:.3f} |", flush=True)
    for name in recipes:
        mine = [r for n, _, _, r in rows if n == name]
        mean = {k: sum(r[k] for r in mine) / len(mine) for k in ("fid", "precision", "recall", "updates")}
        print(f"mean {name}: fid{mine[0]['label']} {mean['fid']:.1f}, precision {mean['precision']:.3f}, "
              f"recall {mean['recall']:.3f}, updates {mean['updates']:,.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What a run leaves behind, after stylegan2-ada's run folders.

runs/00003-faces-illustration/
  training_options.json   resolved config, versions, dataset size, skipped files
  stats.jsonl             one JSON line per epoch (appended on resume)
  log.txt                 the console log
  fakes_000001.png ...    a grid per epoch from one fixed z
  losses.png              the loss curves, redrawn each epoch
  progress.gif            the grids as an animation (written at the end)
  checkpoints/            tf.train.Checkpoint files (last few kept)
  generator.keras         the newest generator (each epoch, and where training stopped), for `--TYPE generate`
  tensorboard/            TensorBoard events (losses, sample grids)
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import json
import math
import os
import re
import shutil

import numpy as np

from illustration_gan import UserError

RUN_NAME = re.compile(r"^(\d{5})-")
OPTIONS_FILE = "training_options.json"
STATS_FILE = "stats.jsonl"
GENERATOR_FILE = "generator.keras"
BEST_GENERATOR_FILE = "generator-best.keras"  # with --fid_every: the generator of the lowest FID so far
BEST_CHECKPOINT_DIR = "checkpoints-best"  # ... and the checkpoint of its epoch


def new_run_dir(run_root: str, dataset: str, model: str) -> str:
    """Creates runs/NNNNN-<dataset>-<model> with the next free number."""
    check_writable(run_root)
    numbers = [int(m.group(1)) for name in os.listdir(run_root) if (m := RUN_NAME.match(name))]
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{dataset}-{model}")
    number = max(numbers, default=-1) + 1
    while True:  # another process may take a number between listdir and mkdir
        path = os.path.join(run_root, f"{number:05d}-{slug}")
        try:
            os.makedirs(path)
            return path
        except FileExistsError:
            number += 1


def latest_run_dir(run_root: str) -> str:
    """The highest-numbered run that has written its options."""
    if os.path.isdir(run_root):
        runs = sorted(
            (name for name in os.listdir(run_root) if RUN_NAME.match(name)),
            key=lambda n: int(RUN_NAME.match(n).group(1)),
        )
        for name in reversed(runs):
            path = os.path.join(run_root, name)
            if os.path.exists(os.path.join(path, OPTIONS_FILE)):
                return path
    raise UserError(f"no training run found in {run_root}/; train one first or pass --run_dir")


def resolve_run_dir(run_dir: str, run_root: str) -> str:
    """`latest`, '' or a path -> an existing run folder."""
    if run_dir in ("", "latest"):
        return latest_run_dir(run_root)
    if not os.path.exists(os.path.join(run_dir, OPTIONS_FILE)):
        raise UserError(f"{run_dir} is not a run folder (no {OPTIONS_FILE})")
    return run_dir


def training_options(config, source, replicas: int, precision_auto: dict | None = None) -> dict:
    """The contents of training_options.json: enough to explain and rebuild the run (with how
    `--precision auto` chose the recorded policy, when it did)."""
    import sys

    import keras
    import tensorflow as tf

    import illustration_gan

    return {
        "config": config.to_json(),
        "command": " ".join(sys.argv),
        "dataset": {
            "path": source.path,
            "absolute_path": source.path if "://" in source.path else os.path.abspath(source.path),
            "builtin_toy_faces": not config.path,
            "kind": source.kind,
            "num_images": source.num_images,
            "skipped_files": len(source.skipped),
            "skipped_counts": dict(source.skipped_counts),
            "max_megapixels": source.max_megapixels,
            "skipped": list(source.skipped[:100]),
        },
        "replicas": replicas,
        **({"precision_auto": precision_auto} if precision_auto else {}),
        "versions": {
            "illustration_gan": illustration_gan.__version__,
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "numpy": np.__version__,
            "python": sys.version.split()[0],
        },
    }


_RESTORE = "; the run's settings are recorded only there, so restore it from a backup or start a new run"


class DamagedFile(UserError, ValueError):
    """A run's JSON file that is not what was written (torn, empty, another type): one line naming it.
    A ValueError too, so readers that tolerate a missing or unreadable file tolerate this one."""


def read_options(run_dir: str) -> dict:
    """A run's training_options.json, checked to be an object holding a "config" object."""
    path = os.path.join(run_dir, OPTIONS_FILE)
    if not os.path.exists(path):
        raise UserError(f"cannot find {OPTIONS_FILE} in {run_dir}")
    try:
        options = read_json(path)
    except DamagedFile as error:
        raise DamagedFile(f"{error}{_RESTORE}") from None
    if not isinstance(options.get("config"), dict):
        raise DamagedFile(f"{path} is damaged: it holds no \"config\" object{_RESTORE}")
    return options


def read_config(run_dir: str):
    """The Config a run was trained with, from its training_options.json: a DamagedFile error (one
    line) when the file is not an object holding a config, or a setting in it has another type."""
    from illustration_gan import config as config_lib

    path = os.path.join(run_dir, OPTIONS_FILE)
    recorded = read_options(run_dir)["config"]
    try:
        config = config_lib.Config.from_json(recorded)
    except (AttributeError, TypeError) as error:  # "model": [...], an unknown nested shape
        raise DamagedFile(f"{path} is damaged: its config does not parse ({error}){_RESTORE}") from None
    for group in (config, config.model, config.training):
        for field in dataclasses.fields(group):
            value, default = getattr(group, field.name), field.default
            if default is not dataclasses.MISSING and not _same_kind(value, default):
                kind = {bool: "true or false", int: "an integer", float: "a number"}.get(type(default), "a string")
                raise DamagedFile(f"{path} is damaged: {field.name} is {json.dumps(value)[:40]}, not {kind}{_RESTORE}")
    # Only types: values are checked where they are used (config.resolve on --resume), since a rule
    # added after a run was written would otherwise call that run damaged.
    return config


def _same_kind(value, default) -> bool:
    """Whether a recorded value has the type of its field's default (an int where a float is due is)."""
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(default, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float))
    return isinstance(value, type(default))


def recorded_dataset(options: dict) -> dict:
    """The "dataset" record of a run's options ({} when there is none, or it is not an object)."""
    dataset = options.get("dataset")
    return dataset if isinstance(dataset, dict) else {}


def dataset_path(run_dir: str) -> str:
    """The folder (or shards) a run trained on, as recorded in its options: the absolute path
    when the run recorded one (a relative --path means nothing from another folder)."""
    options = read_options(run_dir)
    dataset = recorded_dataset(options)
    path = dataset.get("absolute_path") or dataset.get("path") or options["config"].get("path", "")
    return path if isinstance(path, str) else ""


def dataset_change(run_dir: str, source, batch_size: int) -> str | None:
    """The line a resumed run starts with when its images are not as many as its options record:
    how many there are, and how many steps an epoch now has. None when the count is the same."""
    before = recorded_dataset(read_options(run_dir)).get("num_images")
    if not isinstance(before, int) or before == source.num_images:
        return None
    return (f"the dataset has changed since this run recorded it: {source.num_images} usable images in {source.path} "
            f"({before} then). The epochs left have {source.num_images // batch_size} steps of {batch_size} images "
            f"({before // batch_size} before), the one in progress what is left of them; --epochs still counts epochs")


def check_writable(folder: str) -> None:
    """Fails with one sentence unless files can be created in `folder` (made if missing)."""
    try:
        os.makedirs(folder, exist_ok=True)
        probe = os.path.join(folder, f".write-test-{os.getpid()}")
        with open(probe, "w") as f:
            f.write("ok")
        os.remove(probe)
    except OSError as error:
        raise UserError(f"cannot write into {folder}: {error.strerror or error}") from None


def free_space(path: str) -> str:
    """The free space of the disk holding `path`, for messages (e.g. '12.3 MB free')."""
    try:
        return f"{shutil.disk_usage(path).free / 1e6:.1f} MB free"
    except OSError:
        return "free space unknown"


def remove_leftovers(run_dir: str) -> list[str]:
    """Deletes what a killed run leaves half-written: *.tmp.keras generators, *.tmp files, a partial
    copy of the best checkpoint, and the checkpoint manager's checkpoint.tmp* and ckpt-N_temp/
    (complete checkpoints are kept)."""
    patterns = ["*.tmp.keras", "*.tmp", BEST_CHECKPOINT_DIR + ".partial", os.path.join("checkpoints", "checkpoint.tmp*"),
                os.path.join("checkpoints", "*_temp"), os.path.join("checkpoints", "*_temp_*")]
    removed = []
    for pattern in patterns:
        for path in glob.glob(os.path.join(run_dir, pattern)):
            shutil.rmtree(path, ignore_errors=True) if os.path.isdir(path) else os.remove(path)
            removed.append(path)
    return removed


def write_json(path: str, data: dict) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=2, sort_keys=True)
    os.replace(tmp, path)


def read_json(path: str) -> dict:
    """A JSON object from `path`; DamagedFile (one line) when the file is torn, empty or holds another type."""
    try:
        with open(path, "rb") as f:
            data = json.loads(f.read())
    except ValueError as error:  # JSONDecodeError, or bytes that are not text
        reason = "it is empty" if os.path.getsize(path) == 0 else f"it is not JSON ({error})"
        raise DamagedFile(f"{path} is damaged: {reason}") from None
    if not isinstance(data, dict):
        raise DamagedFile(f"{path} is damaged: it holds {json.dumps(data)[:40]}, not a JSON object")
    return data


def append_jsonl(path: str, record: dict) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(record, sort_keys=True) + "\n")


def read_jsonl(path: str) -> list[dict]:
    """The records of a JSON-lines file. A torn last line (what a full disk or a kill leaves) is
    dropped with a warning; a bad line elsewhere is an error, since records after it are real."""
    if not os.path.exists(path):
        return []
    with open(path) as f:
        lines = [line for line in f.read().split("\n") if line.strip()]
    records = []
    for i, line in enumerate(lines):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if i < len(lines) - 1:
                raise UserError(f"{path}: line {i + 1} is not JSON: {line[:80]!r}") from None
            from absl import logging

            logging.warning("%s: dropping its incomplete last line (%d characters)", path, len(line))
    return records


def truncate_stats(path: str, last_epoch: int) -> None:
    """Drops lines after `last_epoch`: epochs finished after the checkpoint we resume from.
    The file is replaced whole, so a crash here leaves the old one."""
    kept = [r for r in read_jsonl(path) if r.get("epoch", 0) <= last_epoch]
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        for record in kept:
            f.write(json.dumps(record, sort_keys=True) + "\n")
    os.replace(tmp, path)


def checkpoint_prefixes(directory: str) -> list[str]:
    """The complete checkpoints in `directory` (those with an .index file), newest first."""
    import tensorflow as tf

    state = tf.train.get_checkpoint_state(directory)
    listed = list(state.all_model_checkpoint_paths) if state else []
    found = [p[: -len(".index")] for p in glob.glob(os.path.join(directory, "ckpt-*.index"))]
    prefixes = {os.path.join(directory, os.path.basename(p)) for p in listed + found}
    return sorted(prefixes, key=checkpoint_step, reverse=True)


def checkpoint_step(prefix: str) -> int:
    """The step a checkpoint prefix (`.../ckpt-N`, numbered by step) was written at; -1 for another name."""
    found = re.search(r"ckpt-(\d+)$", prefix)
    return int(found.group(1)) if found else -1


def restore_newest_checkpoint(checkpoint, directory: str, warn=print, older=None, first: str = "") -> str | None:
    """Restores the newest checkpoint of `directory` that restores whole into `checkpoint`
    (a tf.train.Checkpoint) and returns its prefix, or None if there is none. A damaged one
    (missing index, truncated or corrupt data) is skipped with a line saying why, never deleted.
    `older`, if given, is the checkpoint object of runs written before `checkpoint` gained items:
    a checkpoint that restores whole into it is not damaged, only older. `first`, if given, is a
    prefix to try before the others. `checkpoint` may hold part of what was saved (a generator)."""
    import tensorflow as tf

    prefixes = checkpoint_prefixes(directory)
    for prefix in [first] * bool(first) + [p for p in prefixes if p != first]:
        try:
            try:
                checkpoint.restore(prefix).assert_existing_objects_matched().expect_partial()
            except AssertionError:
                if older is None:
                    raise
                older.restore(prefix).assert_existing_objects_matched().expect_partial()
            return prefix
        except (tf.errors.OpError, ValueError, AssertionError, IndexError) as error:
            reason = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
            warn(f"skipped checkpoint {os.path.basename(prefix)}: it does not restore ({type(error).__name__}: {reason})")
    return None


def image_grid(images: np.ndarray, columns: int | None = None, padding: int = 2) -> np.ndarray:
    """uint8 images (N, H, W, 3) -> one uint8 grid image, white padding between tiles."""
    n, h, w, c = images.shape
    columns = columns or int(math.ceil(math.sqrt(n)))
    rows = int(math.ceil(n / columns))
    grid = np.full((rows * (h + padding) + padding, columns * (w + padding) + padding, c), 255, np.uint8)
    for i, image in enumerate(images):
        r, col = divmod(i, columns)
        y, x = padding + r * (h + padding), padding + col * (w + padding)
        grid[y : y + h, x : x + w] = image
    return grid


def save_png(path: str, image: np.ndarray) -> None:
    from PIL import Image

    with _replacing(path) as tmp:
        Image.fromarray(image).save(tmp, format="PNG")


@contextlib.contextmanager
def _replacing(path: str):
    """Yields a temporary name that replaces `path` when the block succeeds, and is removed when
    it fails: a full disk never leaves half a file under the real name."""
    tmp = path + ".tmp"
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def plot_losses(stats: list[dict], path: str) -> None:
    """Loss and D-output curves per epoch from stats.jsonl records."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in stats]
    fig, (ax_loss, ax_d) = plt.subplots(1, 2, figsize=(10, 3.6))
    for key in ("d_loss", "g_loss", "zpred_loss"):
        if any(key in r for r in stats):
            ax_loss.plot(epochs, [r.get(key, np.nan) for r in stats], marker=".", label=key)
    ax_loss.set_xlabel("epoch")
    ax_loss.set_title("losses")
    ax_loss.legend()
    for key, label in (("d_real", "D(x)"), ("d_fake", "D(G(z))")):
        ax_d.plot(epochs, [r.get(key, np.nan) for r in stats], marker=".", label=label)
    ax_d.set_xlabel("epoch")
    ax_d.set_title("discriminator outputs (mean)")
    ax_d.legend()
    fig.tight_layout()
    try:
        with _replacing(path) as tmp:
            fig.savefig(tmp, dpi=90, format="png")
    finally:
        plt.close(fig)


def write_progress_gif(run_dir: str, path: str | None = None, max_frames: int = 100) -> str | None:
    """Animates the per-epoch grids (fakes_*.png) into progress.gif."""
    from PIL import Image

    frames = sorted(glob.glob(os.path.join(run_dir, "fakes_*.png")))
    if not frames:
        return None
    if len(frames) > max_frames:
        frames = [frames[int(i)] for i in np.linspace(0, len(frames) - 1, max_frames)]
    images = [Image.open(f).convert("RGB") for f in frames]
    path = path or os.path.join(run_dir, "progress.gif")
    durations = [300] * (len(images) - 1) + [1500]  # linger on the last grid
    with _replacing(path) as tmp:
        images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:], duration=durations, loop=0)
    return path


def save_model(model, path: str) -> None:
    """`model.save(path)` through a temporary NAME.tmp.keras, so a crash never leaves half a file
    (`remove_leftovers` deletes the temporary one)."""
    tmp = path[: -len(".keras")] + ".tmp.keras"
    model.save(tmp)
    os.replace(tmp, path)


def keep_checkpoint(prefix: str, folder: str) -> str:
    """Copies the checkpoint `prefix` (its .index and data shards) into `folder`, replacing what
    was there, so that a rotating CheckpointManager cannot delete it; returns the new prefix."""
    import tensorflow as tf

    tmp = folder + ".partial"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    for name in tf.io.gfile.glob(prefix + ".*"):
        shutil.copy2(name, os.path.join(tmp, os.path.basename(name)))
    name = os.path.basename(prefix)
    with open(os.path.join(tmp, "checkpoint"), "w") as state:  # what tf.train.latest_checkpoint reads
        state.write(f'model_checkpoint_path: "{name}"\nall_model_checkpoint_paths: "{name}"\n')
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)
    return os.path.join(folder, name)

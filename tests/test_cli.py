"""The command line (illustration_gan/cli.py): the console entry point, help by command, flag budget, quiet logs."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT

SCRIPT = Path(sys.executable).parent / "illustration-gan"  # the console script `pip install -e .` writes
CPP_LOG_LINE = re.compile(r"^[IWEF]\d{4} ", re.MULTILINE)  # TensorFlow's C++ logger: "E0000 00:00:... ] ..."
MAX_FLAGS = 51  # issue 21: at most 50 (issue 22 added --update_order); issue 51 added --best


def run(args, env=None, timeout=240):
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def console(*args, **kwargs):
    """`illustration-gan ARGS`: the installed script, or the same function through `python -m`."""
    program = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "illustration_gan.cli"]
    return run([*program, *args], **kwargs)


def train_py(*args, **kwargs):
    return run([sys.executable, str(ROOT / "train.py"), *args], **kwargs)


@pytest.fixture(scope="module")
def cli_flags():
    """{name: help} of the flags illustration_gan.cli defines, and its HELP_GROUPS (read in a fresh process)."""
    code = (
        "import json; from absl import flags; from illustration_gan import cli; "
        "print(json.dumps({'flags': {f.name: f.help for f in flags.FLAGS.get_flags_for_module('illustration_gan.cli')},"
        " 'groups': cli.HELP_GROUPS}))"
    )
    result = run([sys.executable, "-c", code])
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_console_script_is_installed():
    if not SCRIPT.exists():
        pytest.skip(f"{SCRIPT} not found: run `pip install -e .` to install the console script")
    assert "illustration_gan.cli" in SCRIPT.read_text()


def test_a_command_is_the_same_as_its_type_flag():
    args = ["--model", "wgan", "--batch_size", "8", "--dry_run"]
    by_command = console("train", *args)
    by_flag = train_py("--TYPE", "train", *args)
    assert by_command.returncode == 0 and by_flag.returncode == 0, by_command.stderr + by_flag.stderr
    config = json.loads(by_command.stdout)
    assert config == json.loads(by_flag.stdout)
    assert config["training"]["batch_size"] == 8 and config["training"]["loss"] == "wasserstein"
    module = run([sys.executable, "-m", "illustration_gan.cli", "train", *args])
    assert json.loads(module.stdout) == config


def test_console_refuses_unknown_commands_and_a_second_type_with_one_line():
    unknown = console("fit")
    assert unknown.returncode == 2 and "unknown command 'fit'" in unknown.stderr and "Traceback" not in unknown.stderr
    twice = console("generate", "--TYPE", "train")
    assert twice.returncode == 2 and "replaces --TYPE" in twice.stderr
    bare = console()
    assert bare.returncode == 2 and "commands:" in bare.stdout


def test_overview_help_lists_the_commands():
    result = console("--help")
    assert result.returncode == 0
    for command in ("train", "generate", "evaluate", "nearest", "serve"):
        assert re.search(rf"^  {command} ", result.stdout, re.MULTILINE), command


def _groups(help_text: str) -> dict[str, list[str]]:
    """{group heading: [flag names]} of a command's --help."""
    groups, current = {}, None
    for line in help_text.splitlines():
        if re.match(r"^  \S.*:$", line):
            current = groups.setdefault(line.strip().rstrip(":"), [])
        elif current is not None and (match := re.match(r"^    --(?:\[no\])?(\w+)", line)):
            current.append(match.group(1))
    return groups


def test_train_help_groups_the_train_flags():
    result = console("train", "--help")
    assert result.returncode == 0, result.stderr
    groups = _groups(result.stdout)
    assert list(groups)[:4] == ["data", "model", "training recipe", "run"]
    assert "path" in groups["data"] and "max_megapixels" in groups["data"]
    assert "g_width" in groups["model"] and "batch_size" in groups["training recipe"]
    assert "resume" in groups["run"] and "verbose" in groups["run"]
    listed = {name for names in groups.values() for name in names}
    assert not listed & {"img_num", "host", "port", "compare_path", "checkpoint"}  # other commands' flags
    assert "ILLUSTRATION_GAN_KEEP_WORKER_FILES" in result.stdout


@pytest.mark.parametrize("command, has, lacks", [
    ("generate", {"img_num", "checkpoint", "output", "seed"}, {"batch_size", "port"}),
    ("evaluate", {"compare_path", "num_samples", "fid_weights"}, {"img_num", "g_lr"}),
    ("nearest", {"run_dir", "path", "fid_weights"}, {"img_num", "model"}),
    ("serve", {"host", "port", "run_dir"}, {"epochs", "img_num"}),
])
def test_each_command_help_shows_its_own_flags(command, has, lacks):
    result = console(command, "--help")
    assert result.returncode == 0, result.stderr
    listed = {name for names in _groups(result.stdout).values() for name in names}
    assert has <= listed and not lacks & listed


def test_every_flag_belongs_to_a_command_and_train_py_help_lists_them_all(cli_flags):
    grouped = {name for groups in cli_flags["groups"].values() for names in groups.values() for name in names.split()}
    assert set(cli_flags["flags"]) - grouped == {"TYPE"}  # the command itself
    assert grouped <= set(cli_flags["flags"])
    result = train_py("--help")
    assert result.returncode == 0, result.stderr
    for name in grouped:
        assert re.search(rf"--(\[no\])?{name}\b", result.stdout), name
    one = train_py("--TYPE", "serve", "--help")
    assert "--port" in one.stdout and "--batch_size" not in one.stdout


def test_the_command_line_defines_at_most_51_flags(cli_flags):
    names = set(cli_flags["flags"])
    assert len(names) <= MAX_FLAGS, sorted(names)
    # Pruned options and options that lost their flag (their preset values stay in the config).
    gone = {"pack", "minibatch_stddev", "d_batch", "mode_seeking", "feature_matching", "feature_matching_split",
            "xla", "fc_units", "minibatch_dims", "optimizer", "beta1", "beta2", "label_smoothing", "noisy_labels",
            "margin", "monitor_ratio", "zpred_weight", "ada_target", "toy_count", "keep_worker_files",
            "features_cache", "nearest_count", "nearest_metric"}
    assert not names & gone
    assert {"verbose", "max_megapixels"} <= names


def test_a_removed_flag_fails_with_one_clear_line():
    result = console("train", "--pack", "2", "--dry_run")
    assert result.returncode != 0 and "pack" in result.stderr and "Traceback" not in result.stderr


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    """32 random 40x40 images made here (no shared data needed) and one 200x200 (0.04 megapixels)."""
    import cv2

    folder = tmp_path_factory.mktemp("tiny") / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(32):
        cv2.imwrite(str(folder / f"{i}.png"), rng.integers(0, 256, size=(40, 40, 3), dtype=np.uint8))
    cv2.imwrite(str(folder / "big.png"), rng.integers(0, 256, size=(200, 200, 3), dtype=np.uint8))
    return folder


TINY = ["--epochs", "1", "--image_size", "32", "--g_width", "8", "--d_width", "8", "--z_dim", "16",
        "--batch_size", "16"]


def test_verbose_lets_tensorflow_log():
    env = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    quiet = subprocess.run([sys.executable, str(ROOT / "train.py"), "--dry_run"], cwd=ROOT, capture_output=True,
                           text=True, timeout=120, env=env)
    loud = subprocess.run([sys.executable, str(ROOT / "train.py"), "--dry_run", "--verbose"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, env=env)
    assert quiet.returncode == 0 and loud.returncode == 0
    assert not CPP_LOG_LINE.findall(quiet.stderr)
    if not CPP_LOG_LINE.findall(loud.stderr):
        pytest.skip("this TensorFlow build logs nothing at start-up on this machine")
    assert json.loads(loud.stdout) == json.loads(quiet.stdout)


def test_training_decides_precision_auto_logs_quietly_skips_large_images_and_resumes(tiny_folder, tmp_path):
    """The default `--precision auto` through the command line at batch 8 (where the thread-pool
    rule can apply): the run prints and records what `precision.choose` decides for this machine,
    and a resumed run keeps the recorded policy and pools. Along the way: no TensorFlow C++ log
    lines reach a user's shell, an image over --max_megapixels is skipped and named, and the run
    ends naming its folder."""
    from illustration_gan import config as config_lib
    from illustration_gan.training import precision

    env = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}  # a user's shell
    env["ILLUSTRATION_GAN_CACHE"] = str(tmp_path / "cache")
    run = tmp_path / "run"
    train = [sys.executable, str(ROOT / "train.py"), "--TYPE", "train"]
    tiny = [*TINY[:-2], "--batch_size", "8"]
    first = subprocess.run([*train, "--path", str(tiny_folder), "--run_dir", str(run), "--max_megapixels", "0.01",
                            *tiny], cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "epoch 1/1" in first.stdout
    output = first.stdout + first.stderr
    assert not CPP_LOG_LINE.findall(output), output
    assert "oneDNN" not in output and "absl::InitializeLog" not in output, output
    assert "(32 images" in first.stdout and "big.png" in first.stderr  # skipped, and named
    assert first.stdout.strip().splitlines()[-1].startswith(f"run folder {run}: open fakes_000001.png")
    expected = precision.choose(config_lib.resolve("fast", {"precision": "auto", "batch_size": 8, "image_size": 32}))
    options = json.loads((run / "training_options.json").read_text())
    assert options["config"]["precision"] == options["precision_auto"]["chosen"] == expected.policy
    assert options["precision_auto"]["threads"] == list(expected.threads)
    assert f"precision auto: {expected.policy} ({expected.reason}" in first.stdout
    set_pools = f"thread pools: intra-op {expected.threads[0]}, inter-op {expected.threads[1]}"
    assert (set_pools in first.stdout) == (expected.threads != precision.DEFAULT_THREADS)
    resumed = subprocess.run([*train, "--resume", str(run), "--epochs", "2"], cwd=ROOT, capture_output=True,
                             text=True, timeout=600, env=env)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "precision auto" not in resumed.stdout and "epoch 2/2" in resumed.stdout
    assert "dataset has changed" not in resumed.stdout  # the recorded --max_megapixels 0.01 still leaves big.png out
    again = json.loads((run / "training_options.json").read_text())
    assert again["config"]["precision"] == expected.policy
    assert (f"{set_pools} (as this run recorded)" in resumed.stdout) == (expected.threads != precision.DEFAULT_THREADS)


MISSING = "does_not_exist"


@pytest.mark.parametrize("args", [
    ["--TYPE", "train", "--path", f"{MISSING}/"],
    ["--TYPE", "train", "--resume", MISSING],
    ["--TYPE", "generate", "--run_dir", MISSING],
    ["--TYPE", "generate", "--checkpoint", f"{MISSING}/checkpoints/ckpt-4"],
    ["--TYPE", "evaluate", "--path", ".", "--compare_path", MISSING],
    ["--TYPE", "serve", "--run_dir", MISSING],
])
def test_a_missing_path_is_one_line_and_exit_2_before_tensorflow_is_imported(args, tmp_path):
    """A `tensorflow` package that fails on import stands first on the path: the answer must come
    without it (the import takes seconds)."""
    shim = tmp_path / "shim" / "tensorflow"
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text("raise ImportError('TensorFlow was imported before the paths were checked')\n")
    path = os.pathsep.join(filter(None, [str(shim.parent), str(ROOT), os.environ.get("PYTHONPATH", "")]))
    result = train_py(*args, env={"PYTHONPATH": path})
    flag, value = args[-2:]
    assert (result.returncode, result.stdout, result.stderr) == (2, "", f"error: {flag} {value} does not exist\n")


def _other_value(field, current):
    """A valid value of a config flag other than `current`, from its metadata."""
    meta = field.metadata
    if isinstance(current, bool):
        return not current
    if meta["choices"]:
        return next(c for c in meta["choices"] if c != current)
    if isinstance(current, int):
        return current + 1 if meta["upper"] is None or current < meta["upper"] else current - 1
    if isinstance(current, float):
        return (current + 1.0) / 2 if meta["upper"] == 1 else current + 0.5
    return "translation" if field.name in ("augment", "ada_augment") else f"{current}x"


def test_every_config_flag_reaches_its_field_through_the_command_line():
    """The flags generated from config.py's fields (each option written once): each, parsed from a
    command line with another value than its preset's, changes that field of the resolved config
    (under the first preset that admits the value), and bad values are refused with one line by the
    bounds and enums of its metadata."""
    from absl import flags

    from illustration_gan import cli
    from illustration_gan import config as config_lib

    special = {"augment": "translation", "ada_augment": "color", "precision": "mixed_bfloat16"}
    try:
        for field in config_lib.flag_fields():
            for preset in ("dcgan", "illustration", "wgan"):
                base = config_lib.flat(config_lib.resolve(preset, {}))
                value = special.get(field.name, _other_value(field, base[field.name]))
                arg = (f"--{field.name}" if value is True else f"--no{field.name}" if value is False
                       else f"--{field.name}={value}")
                flags.FLAGS.unparse_flags()
                flags.FLAGS(["train.py", f"--model={preset}", "--path=faces/", arg])
                try:
                    config = cli.resolved_config()
                except config_lib.UserError:
                    continue  # a value this preset refuses (e.g. the z-predictor outside IllustrationGAN)
                assert config_lib.flat(config)[field.name] == value, arg
                break
            else:
                raise AssertionError(f"no preset accepts {arg}")
    finally:
        flags.FLAGS.unparse_flags()
    for bad in ("--seed=-1", "--image_size=48", "--loss=l2", "--lr_decay=2", "--batch_size=0"):
        refused = console("train", "--dry_run", bad)
        assert refused.returncode != 0 and bad.split("=")[0] in refused.stderr and "Traceback" not in refused.stderr


def test_train_help_shows_the_values_of_the_preset_it_names():
    fast, dcgan = console("train", "--help"), console("train", "--model", "dcgan", "--help")
    assert fast.returncode == 0 and dcgan.returncode == 0
    assert "--batch_size=8\n" in fast.stdout and "--g_lr=0.0004\n" in fast.stdout
    assert "--batch_size=128\n" in dcgan.stdout and "--g_lr=0.0002\n" in dcgan.stdout  # the tutorial's batch
    assert "--model dcgan trains with" in dcgan.stdout
    by_type = train_py("--TYPE", "train", "--model", "illustration", "--help")
    assert "--batch_size=32\n" in by_type.stdout and "--minibatch_kernels=100\n" in by_type.stdout
    for text in (fast.stdout, by_type.stdout):
        assert "README, " not in text  # the sections it once pointed to do not exist
    assert "--precision=auto\n" in fast.stdout and "--precision=float32\n" in dcgan.stdout  # issue 52 item 12


def test_a_reproduction_trains_in_its_sources_float32_and_says_so_unless_told_otherwise(tmp_path, noise_faces):
    """Issue 52, item 12: every source trained in float32; `fast` keeps --precision auto."""
    from illustration_gan import config as config_lib

    for model in ("illustration", "dcgan", "wgan", "pokemon", "pokemon-wgan", "keras-margin", "dense"):
        assert "precision float32" in config_lib.precision_note(config_lib.resolve(model, {})), model
    for model in ("fast", "lightweight"):  # no note: their precision is auto's choice, not a source's
        assert config_lib.precision_note(config_lib.resolve(model, {"image_size": 64})) is None, model
    assert json.loads(console("train", "--dry_run").stdout)["precision"] == "auto"  # fast
    given = console("train", "--model", "dcgan", "--precision", "mixed_bfloat16", "--dry_run")
    assert json.loads(given.stdout)["precision"] == "mixed_bfloat16"
    noise_faces(8)
    run = console("train", "--model", "dense", "--path", str(tmp_path / "faces"), "--image_size", "32",
                  "--batch_size", "8", "--epochs", "1", "--run_root", str(tmp_path / "runs"))
    assert run.returncode == 0, run.stderr
    assert "precision float32, as dense's source trained" in run.stdout
    options = json.loads(next((tmp_path / "runs").glob("*/training_options.json")).read_text())
    assert options["config"]["precision"] == "float32"


@pytest.mark.parametrize("command", ["train", "generate"])
def test_a_seed_out_of_range_is_one_line_before_any_folder(command, tmp_path):
    """Issue 49, item 14: numpy's seeding (Keras' set_random_seed) takes 0 to 2**32 - 1; 2**63 was a traceback
    after the run folder was made."""
    result = console(command, "--seed", str(2**63), "--run_root", str(tmp_path / "runs"),
                     "--output", str(tmp_path / "out"))
    assert result.returncode != 0 and "--seed" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "runs").exists() and not (tmp_path / "out").exists()


@pytest.mark.parametrize("weights", ["random bytes", "missing"])
def test_fid_weights_that_are_broken_or_missing_are_refused_before_the_run_folder(tiny_folder, tmp_path, weights):
    """Issue 49, item 15: a traceback (random bytes) or the instructions after an empty run folder was made."""
    path = tmp_path / "weights.npz"
    if weights == "random bytes":
        path.write_bytes(np.random.default_rng(0).bytes(5000))
    runs = tmp_path / "runs"
    result = console("train", "--path", str(tiny_folder), *TINY, "--precision", "float32", "--run_root", str(runs),
                     "--fid_every", "1", "--fid_weights", str(path))
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    first = result.stderr.splitlines()[0]  # the missing file's message goes on with how to get the file
    assert first.startswith("error: ") and str(path) in first and ("does not exist" in first) == (weights == "missing")
    assert not runs.exists()


def test_resume_refuses_flags_that_differ_from_the_recorded_run_in_one_line(tiny_folder, tmp_path):
    """Issue 49, item 7: --resume with another --image_size, --g_lr or --model trained at the recorded
    settings and said nothing. Flags repeating the recorded values, and the three a resume may change, pass."""
    from illustration_gan import config as config_lib
    from illustration_gan import data, run_folder

    run = tmp_path / "run"
    run.mkdir()
    config = config_lib.resolve("dcgan", dict(image_size=32, g_width=8, d_width=8, z_dim=16, batch_size=16,
                                              precision="float32", path=str(tiny_folder)))
    run_folder.write_json(str(run / run_folder.OPTIONS_FILE),
                          run_folder.training_options(config, data.scan(str(tiny_folder)), 1))
    refused = console("train", "--resume", str(run), "--image_size", "64", "--g_lr", "1e-3", "--model", "fast",
                      "--batch_size", "16", "--path", str(tiny_folder), "--dry_run")
    assert refused.returncode == 2 and "Traceback" not in refused.stderr, refused.stderr
    (line,) = refused.stderr.strip().splitlines()
    assert "--image_size 64 (recorded 32)" in line and "--g_lr 0.001 (recorded 0.0002)" in line
    assert "--model fast (recorded dcgan)" in line and "--batch_size" not in line and "--path" not in line
    accepted = console("train", "--resume", str(run), "--image_size", "32", "--model", "dcgan", "--epochs", "7",
                       "--path", os.path.relpath(tiny_folder, ROOT), "--dry_run")
    assert accepted.returncode == 0, accepted.stderr
    assert json.loads(accepted.stdout)["epochs"] == 7


def test_generate_from_a_checkpoints_folder_writes_into_its_run(tmp_path):
    """`--checkpoint RUN/checkpoints` (what a damaged generator.keras's message proposes, issue 49 item 18)
    wrote its images into RUN's parent folder: the run was taken as the folder above the checkpoints' folder."""
    import tensorflow as tf

    from illustration_gan import config as config_lib
    from illustration_gan import run_folder
    from illustration_gan.networks import build_networks

    run = tmp_path / "runs" / "00000-faces-dcgan"
    run.mkdir(parents=True)
    config = config_lib.resolve("dcgan", dict(image_size=32, g_width=8, d_width=8, z_dim=16))
    run_folder.write_json(str(run / run_folder.OPTIONS_FILE), {"config": config.to_json()})
    generator = build_networks(config.model).generator
    generator(tf.zeros([1, 16]), training=False)  # its variables exist
    tf.train.CheckpointManager(tf.train.Checkpoint(generator=generator), str(run / "checkpoints"), 1).save(4)
    for checkpoint, folder in ((run / "checkpoints", "generated-000"), (run / "checkpoints" / "ckpt-4", "generated-001")):
        result = console("generate", "--checkpoint", str(checkpoint), "--img_num", "2")
        assert result.returncode == 0, result.stderr
        assert sorted(p.name for p in (run / folder).glob("*.png")) == ["grid.png", "seed0000-000000.png",
                                                                         "seed0000-000001.png"]
    assert sorted(p.name for p in run.parent.iterdir()) == [run.name]

"""illustration-gan command line: train, generate, evaluate, inspect and serve GANs.

  illustration-gan train --path faces/ --batch_size 64 --epochs 50
  illustration-gan train                          # built-in toy faces, a few minutes on a CPU
  illustration-gan generate --img_num 100         # newest run unless --run_dir / --checkpoint
  illustration-gan train --resume latest          # continue the newest run
  python train.py --TYPE train ...                # the same program, the command as a flag

Flags marked [preset] take their value from the --model preset unless given
explicitly; `--help` shows the values of --model (fast unless given). The config
flags are generated from the fields of config.py (`config.option`): an option is
written once. --dry_run prints the resolved configuration as JSON and exits.
"""

from __future__ import annotations

import json
import logging as pylogging
import os
import re
import sys
import tempfile
import textwrap

from absl import app, flags, logging

from illustration_gan import MAX_MEGAPIXELS
from illustration_gan import config as config_lib

FLAGS = flags.FLAGS

COMMANDS = {
    "train": "train a run (on the built-in toy faces when no --path is given)",
    "generate": "write images (PNG files and a grid) from a run's generator",
    "evaluate": "FID, KID, precision and recall of a run, or of one image folder against another",
    "nearest": "the nearest-neighbour check: generated images above their closest training images",
    "serve": "a run's local web page (samples, interpolation, dataset explorer)",
}

flags.DEFINE_enum("TYPE", "train", list(COMMANDS),
                  "What to do: train a run, generate images, evaluate (FID, KID, precision, recall), "
                  "write the nearest-neighbour check, or serve a run's local web page.")
DEFAULT_PRESET = "fast"
PRESET_GROUPS = (config_lib.MODEL, config_lib.RECIPE)  # the --help groups whose values a preset sets


def _define_config_flags() -> list[str]:
    """One flag per config field declared with `config.option`, from its metadata (help, group,
    bounds, choices); its default is the default preset's value. Returns the names."""
    defaults = config_lib.flat(config_lib.resolve(DEFAULT_PRESET, {}))
    names = []
    for f in config_lib.flag_fields():
        meta, name = f.metadata, f.name
        default = meta["cli_default"] if meta["cli_default"] is not None else defaults[name]
        text = meta["help"] + (" [preset]" if meta["group"] in PRESET_GROUPS else "")
        if isinstance(default, bool):
            flags.DEFINE_bool(name, default, text)
        elif meta["choices"] and isinstance(default, str):
            flags.DEFINE_enum(name, default, list(meta["choices"]), text)
        elif isinstance(default, int):
            flags.DEFINE_integer(name, default, text, lower_bound=meta["lower"], upper_bound=meta["upper"])
        elif isinstance(default, float):
            flags.DEFINE_float(name, default, text, lower_bound=meta["lower"], upper_bound=meta["upper"])
        else:
            flags.DEFINE_string(name, default, text)
        if meta["choices"] and not isinstance(default, str):
            flags.register_validator(name, lambda v, c=meta["choices"]: v in c,
                                     message=f"--{name} must be one of {meta['choices']}")
        names.append(name)
    return names


CONFIG_FLAGS = _define_config_flags()
flags.DEFINE_float("max_megapixels", MAX_MEGAPIXELS, "Skip images larger than this (decompression-bomb guard; the "
                   "face cropper's cap).", lower_bound=0)
flags.DEFINE_enum("model", DEFAULT_PRESET, sorted(config_lib.PRESETS),
                  "Model preset (architecture + training recipe): fast (best measured at a 20-minute CPU budget), "
                  "illustration (IllustrationGAN 2016), lightweight (FastGAN 2021, 64 px and up), dcgan, wgan, dense, "
                  "pokemon, pokemon-wgan, keras-margin "
                  "(the sources they reproduce: docs/reproduction.md). `--model NAME --help` shows its values.")
flags.DEFINE_integer("cpu_replicas", 2, "--strategy mirrored without GPUs: logical CPU devices.", lower_bound=1)
flags.DEFINE_string("run_dir", "", "A run folder: where to train (multi-worker) or which run to use ('' = newest).")
flags.DEFINE_string("resume", "", "Continue a run from its newest checkpoint: a run folder or 'latest'.")
flags.DEFINE_bool("dry_run", False, "Print the resolved configuration as JSON and exit.")
flags.DEFINE_bool("verbose", False, "Show TensorFlow's C++ log lines and INFO messages (hidden by default).")
# Generate
flags.DEFINE_integer("img_num", 100, "Number of images to generate.", lower_bound=1, upper_bound=100_000)
flags.DEFINE_string("output", "", "Output of generate ('' = a new generated-NNN/ in the run folder) or of nearest "
                    "('' = nearest-mse-seedS.png and nearest-inception-seedS.png in the run folder).")
flags.DEFINE_string("checkpoint", "", "Generate from this checkpoint (prefix or checkpoints/ folder) instead of "
                    "generator.keras.")
flags.DEFINE_bool("overwrite", False, "Allow generate to replace existing files.")
flags.DEFINE_bool("best", False, "generate and serve: the generator of the lowest FID (generator-best.keras, kept "
                  "by training with --fid_every) instead of the newest.")
# Evaluate
flags.DEFINE_string("compare_path", "", "evaluate: compare this image folder with --path instead of a generator.")
flags.DEFINE_integer("num_samples", 5000, "Generated images per evaluation (part of the metric name: fid5k).",
                     lower_bound=2)
flags.DEFINE_integer("num_real", 5000, "Real images per evaluation (at most).", lower_bound=2)
flags.DEFINE_string("fid_weights", "", "FID Inception weights (.npz); default: $ILLUSTRATION_GAN_FID_WEIGHTS, then "
                    "~/.cache/illustration_gan/fid_inception_v3_2015-12-05.npz (docs/evaluation.md).")
flags.DEFINE_integer("fid_every", -1, "train: evaluate FID every N epochs and keep generator-best.keras; -1 = "
                     "watch by FID on 1,000 samples within 5% of the run's time when the FID weights are found; "
                     "0 = off.", lower_bound=-1)
# Serve
flags.DEFINE_string("host", "127.0.0.1", "serve: address to listen on (anything but loopback is reachable by "
                    "others).")
flags.DEFINE_integer("port", 8000, "serve: port.", lower_bound=1, upper_bound=65535)

flags.register_multi_flags_validator(
    ["strategy", "run_dir", "TYPE", "resume"],
    lambda f: f["strategy"] != "multiworker" or f["TYPE"] != "train" or bool(f["run_dir"] or f["resume"]),
    message="--strategy multiworker needs --run_dir (the same folder on every worker)",
)
flags.register_multi_flags_validator(
    ["strategy", "max_minutes"],
    # Each worker reads its own clock: they would stop (and set --lr_decay's rate) at different steps.
    lambda f: f["strategy"] != "multiworker" or f["max_minutes"] == 0,
    message="--max_minutes is per process; with --strategy multiworker limit the run by --epochs",
)



def _train_groups() -> dict[str, str]:
    groups = {config_lib.DATA: [], config_lib.MODEL: ["model"], config_lib.RECIPE: [], config_lib.RUN: []}
    for f in config_lib.flag_fields():
        groups[f.metadata["group"]].append(f.name)
    groups[config_lib.DATA].append("max_megapixels")
    groups[config_lib.RUN] += ["cpu_replicas", "run_dir", "resume", "dry_run", "verbose"]
    groups["FID during training"] = ["fid_every", "num_samples", "num_real", "fid_weights"]
    return {group: " ".join(names) for group, names in groups.items()}


# The flags each command reads, in the groups its --help shows.
HELP_GROUPS = {
    "train": _train_groups(),
    "generate": {
        "which generator": "run_dir checkpoint best run_root",
        "images": "img_num seed output overwrite verbose",
    },
    "evaluate": {
        "what to compare": "run_dir run_root path compare_path image_size",
        "metrics": "num_samples num_real fid_weights seed verbose",
    },
    "nearest": {
        "nearest-neighbour check": "run_dir run_root path output seed fid_weights verbose",
    },
    "serve": {
        "web page": "run_dir run_root best path host port verbose",
    },
}
ENVIRONMENT = {
    "ILLUSTRATION_GAN_FID_WEIGHTS": "the FID Inception weights file (when --fid_weights is not given)",
    "ILLUSTRATION_GAN_CACHE": "the cache root (toy faces, real-image features); default ~/.cache/illustration_gan",
    "ILLUSTRATION_GAN_WATCH_SHARE": "the share of a run's time the default watch (--fid_every -1) may take; "
                                    "default 0.05",
    "ILLUSTRATION_GAN_KEEP_WORKER_FILES": "=1: multiworker training keeps non-chief workers' scratch checkpoints "
                                          "(run_dir/.workerN-scratch) for inspection",
}

def _default_watch():
    """The FIDMonitor factory of the default watch (`--fid_every -1`), or None with one line saying why not."""
    from illustration_gan import evaluation, metrics

    try:
        weights = metrics.check_fid_weights(FLAGS.fid_weights or None)
        share = evaluation.watch_share()
    except (metrics.FIDWeightsNotFound, metrics.FIDWeightsInvalid) as error:
        print(f"watch: off ({str(error).splitlines()[0]}); --fid_weights turns it on", flush=True)
        return None
    samples = FLAGS.num_samples if FLAGS["num_samples"].present else evaluation.WATCH_SAMPLES
    print(f"watch: FID on {samples:,} samples at epoch ends, within {share:.0%} of "
          f"the run's time; the best generator is kept as generator-best.keras (--fid_every 0: off)", flush=True)
    return lambda run_dir, path: evaluation.FIDMonitor(
        run_dir, path, None, samples, FLAGS.num_real, weights, share=share)


TOY_DEFAULTS = {"image_size": 32, "epochs": 10}  # the first-run default: minutes on a laptop CPU
TOY_COUNT = 4096  # procedural toy faces when --path is empty
NEAREST_COUNT, NEAREST_K = 8, 5  # generated images in the nearest picture's top row, neighbours below each
HELP_ARGS = ("-h", "--help", "-help", "-?", "--helpshort")


# ---------------------------------------------------------------- the commands


def resolved_config() -> config_lib.Config:
    overrides = {name: FLAGS[name].value for name in CONFIG_FLAGS if FLAGS[name].present}
    if not FLAGS.path:
        for name, value in TOY_DEFAULTS.items():
            overrides.setdefault(name, value)
    overrides["path"] = FLAGS.path
    if FLAGS["precision"].present or config_lib.source_precision(FLAGS.model) is None:
        overrides["precision"] = FLAGS.precision  # "auto" unless given: decided when the run starts (precision.py)
    return config_lib.resolve(FLAGS.model, overrides)


def run_train():
    from illustration_gan import UserError, distribute, run_folder, toy_faces, training
    from illustration_gan import data as data_lib

    recorded = None  # a resumed run's precision_auto record: it keeps the thread pools it recorded
    max_megapixels = FLAGS.max_megapixels
    if FLAGS.resume:
        run_dir = run_folder.resolve_run_dir(FLAGS.resume, FLAGS.run_root)
        config = run_folder.read_config(run_dir)
        options = run_folder.read_options(run_dir)
        refuse_changed_settings(run_dir, config, options)
        recorded = options.get("precision_auto") if isinstance(options.get("precision_auto"), dict) else {}
        changes = {name: FLAGS[name].value for name in RESUME_CHANGES if FLAGS[name].present}
        cap = run_folder.recorded_dataset(options).get("max_megapixels")
        if isinstance(cap, (int, float)) and not FLAGS["max_megapixels"].present:
            max_megapixels = cap  # the images the run trained on, unless another cap is asked for
        config = config_lib.resolve(config.preset, {**config_lib.flat(config), **changes})
    else:
        config = resolved_config()
    if FLAGS.dry_run:
        print(config_lib.dumps(config))
        return 0
    watch = None
    if FLAGS.fid_every < 0:  # the default watch: on when the weights are found, said in one line either way
        watch = _default_watch()
    elif FLAGS.fid_every:  # a missing or broken weight file is refused here, before any folder or timing
        from illustration_gan import metrics

        try:
            metrics.check_fid_weights(FLAGS.fid_weights or None)
            metrics.sample_count_note(FLAGS.num_real, FLAGS.num_samples)
        except (metrics.FIDWeightsNotFound, metrics.FIDWeightsInvalid, metrics.TooFewSamples) as error:
            raise UserError(str(error)) from None
    if not FLAGS.resume:
        notes = (config_lib.batch_note(config), config_lib.decay_note(config),
                 None if FLAGS["precision"].present else config_lib.precision_note(config))
        for note in filter(None, notes):
            print(note, flush=True)
    path = config.path
    if not path:
        path = toy_faces.ensure_dataset(TOY_COUNT, seed=0)
        print(f"No --path given: training on {TOY_COUNT} built-in procedural toy faces "
              f"(cartoon faces with 6 hair colours x 4 eye colours x 2 hair styles), {path}", flush=True)
    # TensorFlow fixes its thread pools and devices when it starts (reading the images starts it).
    training.choose_threads(config, lambda line: print(line, flush=True), recorded)
    strategy = distribute.make_strategy(config.strategy, FLAGS.cpu_replicas)
    source = data_lib.scan(path, max_megapixels=max_megapixels)
    training.steps_per_epoch_of(source.num_images, config.training.batch_size, strategy)  # before any folder
    if FLAGS.resume:
        run_dir = run_folder.resolve_run_dir(FLAGS.resume, FLAGS.run_root)
    elif FLAGS.run_dir:
        run_dir = FLAGS.run_dir
        if os.path.exists(os.path.join(run_dir, run_folder.STATS_FILE)) and distribute.is_chief(strategy):
            raise UserError(f"{run_dir} already holds a run; use --resume {run_dir} to continue it")
        run_folder.check_writable(run_dir)
    else:
        dataset_name = "toyfaces" if not config.path else source.name
        run_dir = run_folder.new_run_dir(config.run_root, dataset_name, config.preset)
    print(f"run folder: {run_dir}  ({source.num_images} images, {len(source.skipped)} skipped; "
          f"{strategy.num_replicas_in_sync} replica(s))", flush=True)
    callbacks = []
    if FLAGS.fid_every > 0:
        from illustration_gan import evaluation

        callbacks.append(evaluation.FIDMonitor(run_dir, path, FLAGS.fid_every, FLAGS.num_samples, FLAGS.num_real,
                                               FLAGS.fid_weights or None))
    elif watch:
        callbacks.append(watch(run_dir, path))
    keep_worker_files = os.environ.get("ILLUSTRATION_GAN_KEEP_WORKER_FILES", "") == "1"
    try:
        training.train(config, source, run_dir, strategy, resume=bool(FLAGS.resume), callbacks=callbacks,
                       keep_worker_files=keep_worker_files)
    except training.TrainingInterrupted as stop:
        return 128 + stop.signum
    except training.TrainingDiverged as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


# What a run may change when it continues: how long it goes on and how many checkpoints it keeps.
RESUME_CHANGES = ("epochs", "max_minutes", "keep_checkpoints")


def refuse_changed_settings(run_dir: str, config: config_lib.Config, options: dict) -> None:
    """One line naming every flag given to --resume that differs from what the run recorded.

    Refused rather than ignored with a warning: the run would go on at its recorded settings
    while its owner read its numbers as those of the flags typed, and one warning line is lost in
    a long run's log. A flag repeating the recorded value (a script re-running its command with
    --resume) is accepted. --run_root finds the run (--resume latest), --path where its images are.
    """
    from illustration_gan import UserError, run_folder

    recorded = {**config_lib.flat(config), "model": config.preset}
    dataset = run_folder.recorded_dataset(options)
    differ = []
    for name in dict.fromkeys(["model", "path", *CONFIG_FLAGS]):
        if name in RESUME_CHANGES or name == "run_root" or not FLAGS[name].present:
            continue
        given, kept = FLAGS[name].value, recorded[name]
        if name == "path":  # the run's images, however the path is written
            kept = dataset.get("absolute_path") or kept
            same = os.path.abspath(given) == os.path.abspath(kept) if given and kept else given == kept
        elif name == "precision":  # "auto" chose the recorded policy
            same = given == kept or (given == "auto" and "precision_auto" in options)
        elif isinstance(kept, float) and not isinstance(given, bool):
            same = isinstance(given, (int, float)) and abs(given - kept) <= 1e-9 * max(abs(kept), 1e-30)
        else:
            same = given == kept
        if not same:
            differ.append(f"--{name} {given} (recorded {kept if kept != '' else repr('')})")
    if differ:
        raise UserError(
            f"--resume continues {run_dir} at the settings it recorded, and these flags differ from them: "
            f"{', '.join(differ)}. Drop them (a resumed run changes only --{', --'.join(RESUME_CHANGES)}), "
            "or start a new run with them"
        )


def run_generate():
    from illustration_gan import UserError, generate, run_folder

    if FLAGS.best and FLAGS.checkpoint:
        raise UserError("--best and --checkpoint both name a generator: pass one (the best one's checkpoint is "
                        f"RUN/{run_folder.BEST_CHECKPOINT_DIR})")
    sampler = generate.load_sampler(FLAGS.run_dir, FLAGS.checkpoint, FLAGS.run_root, best=FLAGS.best)
    if FLAGS.output:
        output = FLAGS.output
    else:
        checkpoints = FLAGS.checkpoint if os.path.isdir(FLAGS.checkpoint) else os.path.dirname(FLAGS.checkpoint)
        run_dir = FLAGS.run_dir or (os.path.dirname(os.path.abspath(checkpoints))  # RUN/checkpoints[/ckpt-N]
                                    if FLAGS.checkpoint else run_folder.latest_run_dir(FLAGS.run_root))
        output = generate.next_output_dir(run_dir)
    paths = generate.write_images(sampler, FLAGS.img_num, output, seed=FLAGS.seed, overwrite=FLAGS.overwrite)
    print(f"wrote {len(paths) - 1} images and {os.path.basename(paths[-1])} to {output}")
    return 0


def run_evaluate():
    from illustration_gan import evaluation, run_folder

    weights = FLAGS.fid_weights or None
    if FLAGS.compare_path:
        scores = evaluation.compare_folders(FLAGS.path, FLAGS.compare_path, FLAGS.image_size, FLAGS.num_real, weights)
        print(json.dumps({"path": FLAGS.path, "compare_path": FLAGS.compare_path, "image_size": FLAGS.image_size,
                          **scores}, indent=2))
        return 0
    run_dir = run_folder.resolve_run_dir(FLAGS.run_dir, FLAGS.run_root)
    record = evaluation.evaluate_run(run_dir, FLAGS.path, FLAGS.num_samples, FLAGS.num_real, weights,
                                     seed=FLAGS.seed)
    print(json.dumps(record, indent=2))
    print(f"appended to {os.path.join(run_dir, evaluation.METRIC_FILE)}")
    return 0


def nearest_outputs(output: str, run_dir: str, seed: int) -> dict:
    """Where `--TYPE nearest` writes its two pictures: {'mse': path, 'inception': path}."""
    if not output:
        return {m: os.path.join(run_dir, f"nearest-{m}-seed{seed}.png") for m in ("mse", "inception")}
    stem, ext = os.path.splitext(output)
    return {"mse": output, "inception": f"{stem}-inception{ext or '.png'}"}


def run_nearest():
    from illustration_gan import UserError, evaluation, metrics, run_folder

    try:  # weights named by --fid_weights or $ILLUSTRATION_GAN_FID_WEIGHTS must exist; the cache file may not
        weights = metrics.resolve_fid_weights(FLAGS.fid_weights or None)
    except metrics.FIDWeightsNotFound as error:
        if FLAGS.fid_weights or os.environ.get(metrics.DEFAULT_WEIGHTS_ENV):
            raise UserError(str(error)) from None
        weights = None
    run_dir = run_folder.resolve_run_dir(FLAGS.run_dir, FLAGS.run_root)
    path = FLAGS.path or run_folder.dataset_path(run_dir)
    if not path:
        raise UserError("pass --path: the training images to compare with")
    outputs = nearest_outputs(FLAGS.output, run_dir, FLAGS.seed)
    evaluation.refuse_existing(outputs["mse"], *([outputs["inception"]] if weights else []))  # both or neither
    written = evaluation.nearest_picture(run_dir, path, outputs["mse"], NEAREST_COUNT, NEAREST_K, "mse",
                                         seed=FLAGS.seed)
    print(f"wrote {written}: top row generated, below each its {NEAREST_K} nearest training images by pixel MSE")
    if weights is None:
        print("skipped the picture by Inception-feature distance: FID weights not found (pass --fid_weights; "
              "see docs/evaluation.md)")
        return 0
    written = evaluation.nearest_picture(run_dir, path, outputs["inception"], NEAREST_COUNT, NEAREST_K, "inception",
                                         seed=FLAGS.seed, fid_weights=weights)
    print(f"wrote {written}: the same by Inception-feature distance")
    return 0


def run_serve():
    from illustration_gan import run_folder, serve

    run_dir = run_folder.resolve_run_dir(FLAGS.run_dir, FLAGS.run_root)
    serve.serve(run_dir, FLAGS.path or None, host=FLAGS.host, port=FLAGS.port, best=FLAGS.best)
    return 0


# ---------------------------------------------------------------- TensorFlow's log noise

# Notices of TensorFlow's C++ logger while it loads ("I0000 00:00:1796099027.125336    6391 port.cc:153] oneDNN
# custom operations are on. ..."), absl's preamble to them, and cpu_feature_guard's second line.
_IMPORT_NOISE = re.compile(r"^(WARNING: All log messages before absl::InitializeLog\(\)|[IW]\d{4} \d\d:\d\d:\d+\.\d+ "
                           r"+\d+ \S+:\d+\] |To enable the following instructions:)")


def import_tensorflow(verbose: bool) -> None:
    """Imports TensorFlow with its C++ logger silenced unless `verbose`.

    TF_CPP_MIN_LOG_LEVEL=3 silences the C++ logger from then on. A few notices (oneDNN's
    "custom operations are on") go straight to absl's C++ log while TensorFlow's shared
    libraries load, before that setting applies and with no environment variable of
    their own, so the import runs with file descriptor 2 captured and the lines that
    are not such notices are written back to stderr.
    """
    if verbose:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0")
    else:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    if verbose or "tensorflow" in sys.modules:
        import tensorflow  # noqa: F401

        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            import tensorflow  # noqa: F401
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            kept = [line for line in capture.read().decode(errors="replace").splitlines(keepends=True)
                    if not _IMPORT_NOISE.match(line)]
            sys.stderr.write("".join(kept))
            sys.stderr.flush()


# ---------------------------------------------------------------- help


def _flag_help(name: str, shown: dict, width: int = 100) -> str:
    """One flag's help; `shown` holds the values the chosen preset trains with (config flags)."""
    flag = FLAGS[name]
    value = shown.get(name, flag.default)
    if flag.boolean:
        head = f"--[no]{name}  (default: {'on' if value else 'off'})"
    else:
        head = f"--{name}={value if value not in ('', None) else repr('')}"
    body = textwrap.fill(flag.help, width, initial_indent=" " * 8, subsequent_indent=" " * 8)
    return f"    {head}\n{body}"


def preset_values(preset: str) -> dict:
    """The config flags' values a run of `preset` trains with on the command line's defaults."""
    values = config_lib.flat(config_lib.resolve(preset, {}))
    auto = config_lib.source_precision(preset) is None  # a reproduction shows its source's float32
    return {name: FLAGS[name].default if name == "precision" and auto else values[name] for name in CONFIG_FLAGS}


def command_help(command: str, program: str = "illustration-gan", preset: str = DEFAULT_PRESET) -> str:
    invocation = f"{program} {command}" if program == "illustration-gan" else f"{program} --TYPE {command}"
    lines = [f"{invocation} [--flag=value ...]: {COMMANDS[command]}.", ""]
    shown = {}
    if command == "train":
        shown = preset_values(preset)
        note = (f"Values shown are those --model {preset} trains with ([preset]: set by the preset, overridden by "
                f"the flag); `--model NAME --help` shows another preset's. Without --path: "
                + ", ".join(f"--{k}={v}" for k, v in TOY_DEFAULTS.items()) + " unless given.")
        lines += [textwrap.fill(note, 100), ""]
    for group, names in HELP_GROUPS[command].items():
        lines.append(f"  {group}:")
        lines.extend(_flag_help(name, shown) for name in names.split())
        lines.append("")
    if command == "train":
        lines.append("  environment:")
        lines.extend(f"    {key}: {text}" for key, text in ENVIRONMENT.items())
        lines.append("")
    return "\n".join(lines)


def overview() -> str:
    lines = [
        "illustration-gan: train, generate from, evaluate, inspect and serve GANs of anime faces.",
        "",
        "usage: illustration-gan COMMAND [--flag=value ...]",
        "       python train.py --TYPE COMMAND [--flag=value ...]   (the same program)",
        "",
        "commands:",
        *(f"  {name:<9} {text}" for name, text in COMMANDS.items()),
        "",
        "`illustration-gan COMMAND --help` lists a command's flags by group; "
        "`--helpfull` lists every flag, absl's own included.",
    ]
    return "\n".join(lines)


def full_help(program: str, preset: str = DEFAULT_PRESET) -> str:
    """Every command's flags: `python train.py --help`."""
    parts = [overview(), ""]
    parts.extend(command_help(command, program, preset) for command in COMMANDS)
    return "\n".join(parts)


# ---------------------------------------------------------------- entry points


# The flags of each command that name something that must exist already (train's --run_dir may be new).
EXISTING_PATHS = {"train": ("path", "resume"), "generate": ("run_dir", "checkpoint"),
                  "evaluate": ("path", "compare_path", "run_dir"), "nearest": ("path", "run_dir"),
                  "serve": ("path", "run_dir")}


def missing_path(command: str) -> str | None:
    """The error line for the first flag of `command` naming a local path that does not exist.
    Globs, cloud paths (gs://) and `--resume latest` are left to the command."""
    for name in EXISTING_PATHS[command]:
        value = FLAGS[name].value
        if not value or (name == "resume" and value == "latest") or "://" in value or any(c in value for c in "*?["):
            continue
        if not (os.path.exists(value) or (name == "checkpoint" and os.path.exists(value + ".index"))):
            return f"--{name} {value} does not exist"
    return None


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    missing = missing_path(FLAGS.TYPE)
    if missing:  # before TensorFlow's import (seconds): a mistyped path answers at once
        print(f"error: {missing}", file=sys.stderr)
        return 2
    import_tensorflow(FLAGS.verbose)
    from illustration_gan import UserError

    if not FLAGS["verbosity"].present:
        # TensorFlow's INFO lines drown the per-epoch log
        logging.set_verbosity(logging.INFO if FLAGS.verbose else logging.WARNING)
    if not FLAGS.verbose:  # "WARNING: skipping x.jpg: ..." rather than a C++-style "W1201 04:33:53.7 123 data.py:145] "
        logging.get_absl_handler().setFormatter(pylogging.Formatter("%(levelname)s: %(message)s"))
    try:
        commands = {"train": run_train, "generate": run_generate, "evaluate": run_evaluate, "nearest": run_nearest,
                    "serve": run_serve}
        return commands[FLAGS.TYPE]()
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def run(argv: list[str] | None = None) -> None:
    """`python train.py --TYPE COMMAND [flags]`: `--help` shows every command's flags (or --TYPE's)."""
    argv = list(sys.argv if argv is None else argv)
    if any(arg in HELP_ARGS for arg in argv[1:]):
        command, preset = _given(argv[1:], "TYPE", COMMANDS), _given(argv[1:], "model", config_lib.PRESETS)
        program, preset = "python train.py", preset or DEFAULT_PRESET
        print(command_help(command, program, preset) if command else full_help(program, preset))
        sys.exit(0)
    app.run(main, argv=argv)


def _given(args: list[str], name: str, choices) -> str | None:
    """The value of `--name` in `args` (before absl parses them) if it is one of `choices`."""
    for i, arg in enumerate(args):
        if arg.startswith(f"--{name}="):
            value = arg.split("=", 1)[1]
        elif arg == f"--{name}" and i + 1 < len(args):
            value = args[i + 1]
        else:
            continue
        return value if value in choices else None
    return None


def console_main(argv: list[str] | None = None) -> None:
    """`illustration-gan COMMAND [flags]`, the same as `python train.py --TYPE COMMAND [flags]`."""
    argv = list(sys.argv if argv is None else argv)
    args = argv[1:]
    if not args or args[0] in HELP_ARGS or args[0] == "help":
        print(overview())
        sys.exit(0 if args else 2)
    command, rest = args[0], args[1:]
    if command not in COMMANDS:
        print(f"error: unknown command {command!r}; choose from {', '.join(COMMANDS)}\n\n{overview()}",
              file=sys.stderr)
        sys.exit(2)
    if any(arg in HELP_ARGS for arg in rest):
        print(command_help(command, preset=_given(rest, "model", config_lib.PRESETS) or DEFAULT_PRESET))
        sys.exit(0)
    if any(arg == "--TYPE" or arg.startswith("--TYPE=") for arg in rest):
        print(f"error: the command ({command}) replaces --TYPE", file=sys.stderr)
        sys.exit(2)
    app.run(main, argv=[argv[0], f"--TYPE={command}", *rest])


if __name__ == "__main__":
    console_main()

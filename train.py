"""illustration-gan command line: train, generate, evaluate, inspect and serve GANs.

  python train.py --TYPE train --path faces/ --batch_size 64 --epochs 50
  python train.py --TYPE train                     # built-in toy faces, a few minutes on a CPU
  python train.py --TYPE generate --img_num 100    # newest run unless --run_dir / --checkpoint
  python train.py --TYPE train --resume latest     # continue the newest run

Flags marked [preset] take their value from the --model preset unless given
explicitly (the default shown is the dataclass default); --dry_run prints the
resolved configuration as JSON and exits.
"""

from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's C++ start-up chatter out of the log

from absl import app, flags, logging  # noqa: E402

from illustration_gan import config as config_lib  # noqa: E402

FLAGS = flags.FLAGS

flags.DEFINE_enum("TYPE", "train", ["train", "generate", "evaluate", "nearest", "serve"],
                  "What to do: train a run, generate images, evaluate (FID, KID, precision, recall), "
                  "write the nearest-neighbour check, or serve a run's local web page.")
# Data
flags.DEFINE_string("path", "", "Training images: a folder (searched recursively), a folder of TFRecord shards, "
                    "or a glob of shards (gs:// works). Empty: the built-in procedural toy faces.")
flags.DEFINE_integer("toy_count", 4096, "Number of toy faces when --path is empty.", lower_bound=64)
# Model
flags.DEFINE_enum("model", "fast", sorted(config_lib.PRESETS),
                  "Model preset (architecture + training recipe): fast (best measured at a 20-minute CPU budget), "
                  "illustration (IllustrationGAN 2016), dcgan, wgan, dense. See README, Models.")
flags.DEFINE_integer("image_size", 64, "Training resolution (32, 64, 128 or 256). Default 32 on the toy faces. [preset]")
flags.DEFINE_integer("z_dim", 100, "Size of the latent vector z. [preset]", lower_bound=1)
flags.DEFINE_integer("g_width", 64, "Generator channels at the finest level (doubling per level, up to 512). [preset]", lower_bound=1)
flags.DEFINE_integer("d_width", 64, "Discriminator channels at the finest level. [preset]", lower_bound=1)
flags.DEFINE_integer("fc_units", 1024, "Width of fully connected layers (illustration, dense). [preset]", lower_bound=1)
flags.DEFINE_integer("minibatch_kernels", 0, "Minibatch discrimination kernels B (0 = off). [preset]", lower_bound=0)
flags.DEFINE_integer("minibatch_dims", 5, "Minibatch discrimination kernel dimensions C. [preset]", lower_bound=1)
flags.DEFINE_bool("spectral_norm", False, "Spectrally normalised discriminator without batch norm (SNGAN; "
                  "dcgan and fast models). [preset]")
flags.DEFINE_enum("d_norm", "batch", list(config_lib.D_NORMS), "Normalisation of the discriminator's hidden "
                  "layers: batch norm (DCGAN, IllustrationGAN) or none (biases instead; dcgan, fast and "
                  "illustration models). [preset]")
flags.DEFINE_enum("upsampling", "transposed", list(config_lib.UPSAMPLING), "DCGAN generator's 2x steps: 4x4 "
                  "stride-2 transposed convolutions, or resize-convolutions (nearest 2x + 3x3 conv, against "
                  "checkerboard artefacts; dcgan and fast models). [preset]")
flags.DEFINE_integer("pack", 1, "PacGAN: D scores packs of this many images stacked along channels (1 = off). "
                     "[preset]", lower_bound=1)
flags.DEFINE_integer("minibatch_stddev", 0, "Group size of ProGAN's minibatch standard-deviation channel on D's last "
                     "4x4 map (0 = off; dcgan and fast models). [preset]", lower_bound=0)
flags.DEFINE_bool("z_predictor", False, "IllustrationGAN's auxiliary z-predictor (illustration model only). [preset]")
# Training recipe
flags.DEFINE_integer("batch_size", 64, "Global batch size, split across replicas. [preset]", lower_bound=1)
flags.DEFINE_integer("epochs", 50, "Epochs to train (total, counting epochs before a resume).", lower_bound=1)
flags.DEFINE_enum("loss", "minimax", list(config_lib.LOSSES), "GAN loss: minimax (non-saturating G), hinge "
                  "(SNGAN, SAGAN) or wasserstein (needs a critic, --model wgan). [preset]")
flags.DEFINE_enum("optimizer", "adam", ["adam", "rmsprop"], "Optimizer of both networks. [preset]")
flags.DEFINE_float("g_lr", 2e-4, "Generator learning rate. [preset]", lower_bound=0)
flags.DEFINE_float("d_lr", 2e-4, "Discriminator learning rate. [preset]", lower_bound=0)
flags.DEFINE_float("beta1", 0.5, "Adam beta1. [preset]", lower_bound=0, upper_bound=1)
flags.DEFINE_float("beta2", 0.999, "Adam beta2. [preset]", lower_bound=0, upper_bound=1)
flags.DEFINE_bool("label_smoothing", False, "BCE targets 0.95 (real) and 0.05 (fake) for D and G. [preset]")
flags.DEFINE_float("noisy_labels", 0.0, "Probability that a D step swaps real and fake labels. [preset]", lower_bound=0, upper_bound=1)
flags.DEFINE_enum("balance", "none", list(config_lib.BALANCE_RULES), "When D and G update (see README, Regimes). [preset]")
flags.DEFINE_float("margin", 1.0, "--balance margin: largest allowed |G loss - D loss|. [preset]", lower_bound=0)
flags.DEFINE_float("monitor_ratio", 0.8, "--balance monitor: D updates only when D loss > ratio * G loss. [preset]", lower_bound=0)
flags.DEFINE_enum("d_batch", "separate", list(config_lib.D_BATCHES), "How D sees a step's reals and fakes: "
                  "in separate batches (the tutorial) or in one joint batch, so D's batch norm cannot normalise "
                  "away a shift shared by all fakes (it matters with --d_norm batch only). [preset]")
flags.DEFINE_integer("n_critic", 1, "Discriminator steps per generator step. [preset]", lower_bound=1)
flags.DEFINE_float("clip_weights", 0.0, "Clip critic weights to +-value after each step (WGAN); 0 = off. [preset]", lower_bound=0)
flags.DEFINE_float("gp_weight", 0.0, "Gradient penalty weight (WGAN-GP); 0 = off. [preset]", lower_bound=0)
flags.DEFINE_float("r1_gamma", 0.0, "R1 penalty gamma on real images (minimax loss); 0 = off. [preset]",
                   lower_bound=0)
flags.DEFINE_float("mode_seeking", 0.0, "Weight of the mode-seeking term (MSGAN) in G's loss; 0 = off. [preset]",
                   lower_bound=0)
flags.DEFINE_float("feature_matching", 0.0, "Weight of the feature-matching term (Salimans et al. 2016: the "
                   "batch means of D's last hidden features, real against fake) in G's loss; 0 = off. [preset]",
                   lower_bound=0)
flags.DEFINE_bool("feature_matching_split", False, "Estimate the feature-matching term from two halves of the "
                  "fake batch, which drops the fakes' own batch variance from it (unbiased). [preset]")
flags.DEFINE_float("zpred_weight", 1.0, "Weight of the z-prediction loss. [preset]", lower_bound=0)
flags.DEFINE_string("augment", "", "DiffAugment policy for D's inputs: comma list of color, translation, cutout "
                    "('' = off). [preset]")
flags.DEFINE_string("ada_augment", "", "Transforms (of color, translation, cutout; not in --augment) applied to each "
                    "of D's inputs with an adaptive probability p, raised while D is surer of the reals than "
                    "--ada_target (ADA); '' = off. [preset]")
flags.DEFINE_float("ada_target", 0.6, "--ada_augment: target for the mean sign of D's logits on reals. [preset]",
                   lower_bound=0.01, upper_bound=0.99)
flags.DEFINE_float("ema_kimg", 0.0, "Half-life (thousands of images) of the generator weight average used for "
                   "samples and generator.keras; 0 = off. [preset]", lower_bound=0)
flags.DEFINE_float("lr_decay", 0.0, "Final share of the run (of --epochs, or of --max_minutes when set) over which "
                   "both learning rates fall linearly to 0; 0 = constant. [preset]", lower_bound=0, upper_bound=1)
# Run
flags.DEFINE_integer("seed", 0, "Random seed (z sampling, shuffling, generation).")
flags.DEFINE_enum("strategy", "default", ["default", "mirrored", "multiworker"], "tf.distribute strategy.")
flags.DEFINE_integer("cpu_replicas", 2, "--strategy mirrored without GPUs: logical CPU devices.", lower_bound=1)
flags.DEFINE_enum("precision", "float32", ["float32", "mixed_float16", "mixed_bfloat16"], "Keras dtype policy.")
flags.DEFINE_bool("xla", False, "Compile each replica's forward and backward pass with XLA.")
flags.DEFINE_string("run_root", "runs", "Folder holding the run folders.")
flags.DEFINE_string("run_dir", "", "A run folder: where to train (multi-worker) or which run to use ('' = newest).")
flags.DEFINE_string("resume", "", "Continue a run from its newest checkpoint: a run folder or 'latest'.")
flags.DEFINE_float("max_minutes", 0.0, "Stop (with a checkpoint) after this many minutes; 0 = no limit.", lower_bound=0)
flags.DEFINE_integer("keep_checkpoints", 3, "Checkpoints to keep.", lower_bound=1)
flags.DEFINE_bool("keep_worker_files", False, "multiworker: keep non-chief workers' scratch checkpoints "
                  "(run_dir/.workerN-scratch) for inspection instead of deleting them.")
flags.DEFINE_bool("dry_run", False, "Print the resolved configuration as JSON and exit.")
# Generate
flags.DEFINE_integer("img_num", 100, "Number of images to generate.", lower_bound=1, upper_bound=100_000)
flags.DEFINE_string("output", "", "Output folder of generate ('' = a new generated-NNN/ in the run folder).")
flags.DEFINE_string("checkpoint", "", "Generate from this checkpoint (prefix or checkpoints/ folder) instead of generator.keras.")
flags.DEFINE_bool("overwrite", False, "Allow generate to replace existing files.")
# Evaluate
flags.DEFINE_string("compare_path", "", "evaluate: compare this image folder with --path instead of a generator.")
flags.DEFINE_integer("num_samples", 5000, "Generated images per evaluation (part of the metric name: fid5k).",
                     lower_bound=2)
flags.DEFINE_integer("num_real", 5000, "Real images per evaluation (at most).", lower_bound=2)
flags.DEFINE_string("fid_weights", "", "FID Inception weights (.npz); default: $ILLUSTRATION_GAN_FID_WEIGHTS, then "
                    "~/.cache/illustration_gan/fid_inception_v3_2015-12-05.npz (see README, Evaluation).")
flags.DEFINE_string("features_cache", "", "Folder caching real-image features ('' = ~/.cache/illustration_gan/fid_features).")
flags.DEFINE_integer("fid_every", 0, "train: evaluate FID every N epochs and keep generator-best.keras; 0 = off.",
                     lower_bound=0)
flags.DEFINE_enum("nearest_metric", "mse", ["mse", "inception"], "nearest: rank training images by pixel MSE "
                  "(the original's method) or by Inception-feature distance.")
flags.DEFINE_integer("nearest_count", 8, "nearest: generated images in the top row.", lower_bound=1, upper_bound=64)
# Serve
flags.DEFINE_string("host", "127.0.0.1", "serve: address to listen on (anything but loopback is reachable by others).")
flags.DEFINE_integer("port", 8000, "serve: port.", lower_bound=1, upper_bound=65535)

flags.register_validator("image_size", lambda v: v in config_lib.IMAGE_SIZES,
                         message=f"--image_size must be one of {config_lib.IMAGE_SIZES}")
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

CONFIG_FLAGS = (
    "image_size z_dim g_width d_width fc_units minibatch_kernels minibatch_dims spectral_norm d_norm upsampling pack minibatch_stddev "
    "z_predictor batch_size loss "
    "optimizer g_lr d_lr beta1 beta2 label_smoothing noisy_labels balance margin monitor_ratio n_critic d_batch "
    "clip_weights gp_weight r1_gamma mode_seeking feature_matching feature_matching_split zpred_weight augment ada_augment ada_target ema_kimg lr_decay epochs seed strategy precision xla run_root "
    "max_minutes keep_checkpoints"
).split()
TOY_DEFAULTS = {"image_size": 32, "epochs": 10}  # the first-run default: minutes on a laptop CPU


def resolved_config() -> config_lib.Config:
    overrides = {name: FLAGS[name].value for name in CONFIG_FLAGS if FLAGS[name].present}
    if not FLAGS.path:
        for name, value in TOY_DEFAULTS.items():
            overrides.setdefault(name, value)
    overrides["path"] = FLAGS.path
    return config_lib.resolve(FLAGS.model, overrides)


def run_train():
    from illustration_gan import UserError, distribute, run_folder, toy_faces, training_loop
    from illustration_gan import data as data_lib

    if FLAGS.resume:
        run_dir = run_folder.resolve_run_dir(FLAGS.resume, FLAGS.run_root)
        options = run_folder.read_json(os.path.join(run_dir, run_folder.OPTIONS_FILE))
        config = config_lib.Config.from_json(options["config"])
        changes = {name: FLAGS[name].value for name in ("epochs", "max_minutes") if FLAGS[name].present}
        config = config_lib.resolve(config.preset, {**_flat(config), **changes})
    else:
        config = resolved_config()
    if FLAGS.dry_run:
        print(config_lib.dumps(config))
        return 0
    strategy = distribute.make_strategy(config.strategy, FLAGS.cpu_replicas)
    path = config.path
    if not path:
        path = toy_faces.ensure_dataset(FLAGS.toy_count, seed=0)
        logging.info("no --path: training on %d procedural toy faces in %s", FLAGS.toy_count, path)
        print(f"No --path given: training on {FLAGS.toy_count} built-in procedural toy faces "
              f"(cartoon faces with 6 hair colours x 4 eye colours x 2 hair styles), {path}", flush=True)
    source = data_lib.scan(path)
    if FLAGS.resume:
        run_dir = run_folder.resolve_run_dir(FLAGS.resume, FLAGS.run_root)
    elif FLAGS.run_dir:
        run_dir = FLAGS.run_dir
        if os.path.exists(os.path.join(run_dir, run_folder.STATS_FILE)) and distribute.is_chief(strategy):
            raise UserError(f"{run_dir} already holds a run; use --resume {run_dir} to continue it")
        os.makedirs(run_dir, exist_ok=True)
    else:
        dataset_name = "toyfaces" if not config.path else source.name
        run_dir = run_folder.new_run_dir(config.run_root, dataset_name, config.preset)
    print(f"run folder: {run_dir}  ({source.num_images} images, {len(source.skipped)} skipped; "
          f"{strategy.num_replicas_in_sync} replica(s))", flush=True)
    callbacks = []
    if FLAGS.fid_every:
        from illustration_gan import evaluation

        callbacks.append(evaluation.FIDMonitor(run_dir, path, FLAGS.fid_every, FLAGS.num_samples, FLAGS.num_real,
                                               FLAGS.fid_weights or None, FLAGS.features_cache or None))
    try:
        training_loop.train(config, source, run_dir, strategy, resume=bool(FLAGS.resume), callbacks=callbacks,
                            keep_worker_files=FLAGS.keep_worker_files)
    except training_loop.TrainingInterrupted as stop:
        return 128 + stop.signum
    except training_loop.TrainingDiverged as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


def _flat(config: config_lib.Config) -> dict:
    data = config.to_json()
    flat = {**data.pop("model"), **data.pop("training"), **data}
    flat.pop("preset")
    return flat


def run_generate():
    from illustration_gan import generate, run_folder

    sampler = generate.load_sampler(FLAGS.run_dir, FLAGS.checkpoint, FLAGS.run_root)
    if FLAGS.output:
        output = FLAGS.output
    else:
        run_dir = FLAGS.run_dir or (os.path.dirname(os.path.dirname(os.path.abspath(FLAGS.checkpoint)))
                                    if FLAGS.checkpoint else run_folder.latest_run_dir(FLAGS.run_root))
        output = generate.next_output_dir(run_dir)
    paths = generate.write_images(sampler, FLAGS.img_num, output, seed=FLAGS.seed, overwrite=FLAGS.overwrite)
    print(f"wrote {len(paths) - 1} images and {os.path.basename(paths[-1])} to {output}")
    return 0


def run_evaluate():
    from illustration_gan import evaluation, run_folder

    weights, cache = FLAGS.fid_weights or None, FLAGS.features_cache or None
    if FLAGS.compare_path:
        scores = evaluation.compare_folders(FLAGS.path, FLAGS.compare_path, FLAGS.image_size, FLAGS.num_real,
                                            weights, cache)
        print(json.dumps({"path": FLAGS.path, "compare_path": FLAGS.compare_path, "image_size": FLAGS.image_size,
                          **scores}, indent=2))
        return 0
    run_dir = run_folder.resolve_run_dir(FLAGS.run_dir, FLAGS.run_root)
    record = evaluation.evaluate_run(run_dir, FLAGS.path, FLAGS.num_samples, FLAGS.num_real, weights, cache,
                                     FLAGS.seed)
    print(json.dumps(record, indent=2))
    print(f"appended to {os.path.join(run_dir, evaluation.METRIC_FILE)}")
    return 0


def run_nearest():
    from illustration_gan import UserError, evaluation, run_folder

    run_dir = run_folder.resolve_run_dir(FLAGS.run_dir, FLAGS.run_root)
    path = FLAGS.path or run_folder.dataset_path(run_dir)
    if not path:
        raise UserError("pass --path: the training images to compare with")
    output = FLAGS.output or os.path.join(run_dir, f"nearest-{FLAGS.nearest_metric}-seed{FLAGS.seed}.png")
    written = evaluation.nearest_picture(run_dir, path, output, FLAGS.nearest_count, 5, FLAGS.nearest_metric,
                                         seed=FLAGS.seed, fid_weights=FLAGS.fid_weights or None)
    print(f"wrote {written}: top row generated, below each its 5 nearest training images ({FLAGS.nearest_metric})")
    return 0


def run_serve():
    from illustration_gan import run_folder, serve

    run_dir = run_folder.resolve_run_dir(FLAGS.run_dir, FLAGS.run_root)
    serve.serve(run_dir, FLAGS.path or None, host=FLAGS.host, port=FLAGS.port)
    return 0


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    from illustration_gan import UserError

    if not FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)  # TensorFlow's INFO lines drown the per-epoch log
    try:
        commands = {"train": run_train, "generate": run_generate, "evaluate": run_evaluate, "nearest": run_nearest,
                    "serve": run_serve}
        return commands[FLAGS.TYPE]()
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    app.run(main)

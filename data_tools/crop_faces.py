"""Builds an anime-face dataset from a folder of illustrations.

    python data_tools/crop_faces.py --input illustrations/ --output faces/

Every illustration below --input (recursively; hidden files and folders are
skipped) is read, its faces are found with the lbpcascade_animeface detector
(nagadomi's documented parameters: equalised grayscale, scaleFactor 1.1,
minNeighbors 5, minSize 24x24), each detection is widened by --margin, made
square, SHIFTED (never padded) to lie inside the image, cropped and resized to
--size with area interpolation. Faces are then cleaned: too small
(--min_face), monochrome (--min_chroma), flat (--min_std), exact duplicates
(sha256 of the encoded crop) and near duplicates (64-bit dHash within
--near_duplicate_distance bits) are dropped, each reason counted in the
summary and recorded in rejected.jsonl. Duplicates are decided in the parent
process in sorted source order, so the dataset does not depend on --workers.

Outputs (see data_tools/face_dataset.py): one file per face named
`<source stem>_<hash of source path>_x<X>_y<Y>_s<SIDE>.png` (or TFRecord
shards `faces-00000-of-0000N.tfrecord` that `train.py --path` reads),
manifest.jsonl, rejected.jsonl, sources.jsonl and, with --preview, a contact
sheet .preview.png (hidden, so the trainer does not take it for a face).
Running again on the same --output resumes: illustrations already done are
skipped, nothing is overwritten; a full disk stops the run with one line and
the same command resumes once there is room. One run at a time writes an
--output (a lock, illustration_gan/folder_lock.py): a second one stops with
one line naming the first. The input folder is only ever read: --output and
--preview_path must lie outside it, and a folder inside it that this tool
made (it holds a manifest.jsonl or sources.jsonl) is skipped with a warning
rather than cropped again.

The detector is downloaded on first use into the Keras cache
(~/.keras/models/lbpcascade_animeface.xml, sha256-checked); --cascade uses a
local copy. Only OpenCV and NumPy are imported, plus TensorFlow for
--format tfrecord (and Keras for the one-time download).
"""

from __future__ import annotations

import collections
import concurrent.futures
import concurrent.futures.process
import contextlib
import dataclasses
import multiprocessing
import os
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: import `data_tools` from the project root
    _here = str(Path(__file__).resolve().parent)
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _here]  # no shadowing by our modules
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2
import numpy as np

from data_tools import cascade as cascade_lib
from data_tools import face_cropping, face_dataset, image_io, preview
from illustration_gan import UserError, folder_lock, run_folder

DROP_REASONS = ("too_small", "monochrome", "flat", "duplicate", "near_duplicate", "name_conflict")
PREVIEW_ILLUSTRATIONS = 6


class CropFacesError(Exception):
    """A problem with the inputs or settings; printed as one line."""


_CROP = face_cropping.CropSettings  # the worker's settings own the defaults they share with the CLI


@dataclasses.dataclass
class Config:
    input: str
    output: str
    size: int = _CROP.size
    margin: float = _CROP.margin
    min_face: int = _CROP.min_face
    scale_factor: float = _CROP.scale_factor
    min_neighbors: int = _CROP.min_neighbors
    min_size: int = _CROP.min_size
    workers: int = 1
    cascade: str = ""
    format: str = "png"
    jpeg_quality: int = _CROP.jpeg_quality
    shard_size: int = 1000
    near_duplicate_distance: int = 4
    min_chroma: float = _CROP.min_chroma
    min_std: float = _CROP.min_std
    max_megapixels: float = _CROP.max_pixels / 1e6
    detect_max_side: int = _CROP.detect_max_side
    dry_run: bool = False
    preview: bool = False
    preview_path: str = ""


@dataclasses.dataclass
class Summary:
    images_found: int = 0
    already_done: int = 0
    images_read: int = 0
    images_without_faces: int = 0
    faces_detected: int = 0
    faces_written: int = 0
    faces_adopted: int = 0  # identical files found on disk, added to the manifest
    faces_already_written: int = 0
    dropped: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    skipped: list[tuple[str, str]] = dataclasses.field(default_factory=list)  # (file, reason)
    ignored: list[str] = dataclasses.field(default_factory=list)  # not image extensions
    shards: list[str] = dataclasses.field(default_factory=list)
    preview_path: str = ""
    seconds: float = 0.0
    workers: int = 1


# ---------------------------------------------------------------------------
# Inputs


def check_paths(input_dir: str, output_dir: str, preview_path: str = "") -> str | None:
    """The problem with --input / --output / --preview_path, or None."""
    if not input_dir or not os.path.isdir(input_dir):
        return f"--input {input_dir!r} is not a folder"
    if not output_dir:
        return "--output is required"
    for flag, path in (("--output", output_dir), ("--preview_path", preview_path)):
        if path and _inside(path, input_dir):
            return f"{flag} {path} is inside --input {input_dir}; the input folder is never written to"
    return None


def _inside(path: str, folder: str) -> bool:
    """`path` is `folder` or below it, by its name or by where links lead."""
    pairs = ((os.path.abspath(path), os.path.abspath(folder)), (os.path.realpath(path), os.path.realpath(folder)))
    return any(os.path.commonpath([p, f]) == f for p, f in pairs)


def list_sources(input_dir: str) -> tuple[list[str], list[str], list[str]]:
    """(image files, other files, folders this tool made) below input_dir, relative with "/",
    sorted. The files of those folders (its earlier outputs) are not listed."""
    images, others, made_here = [], [], []
    for root, dirs, files in os.walk(input_dir):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        rel_root = os.path.relpath(root, input_dir)
        if rel_root != "." and (face_dataset.MANIFEST in files or face_dataset.SOURCES in files):
            made_here.append(rel_root.replace(os.sep, "/"))
            dirs[:] = []
            continue
        for name in files:
            if name.startswith("."):
                continue
            rel = name if rel_root == "." else f"{rel_root}/{name}".replace(os.sep, "/")
            (images if name.lower().endswith(image_io.IMAGE_EXTENSIONS) else others).append(rel)
    return sorted(images), sorted(others), sorted(made_here)


def _results(cfg: Config, settings: face_cropping.CropSettings, todo: list[str], thumbs: set[str]):
    """Yields a SourceResult per illustration, in the order of `todo`."""
    if cfg.workers <= 1 or len(todo) <= 1:
        face_cropping.init_worker(settings)  # in this process; OpenCV keeps its own threads
        for source in todo:
            yield face_cropping.process_source(cfg.input, source, source in thumbs)
        return
    settings = dataclasses.replace(settings, single_thread=True)
    context = multiprocessing.get_context("spawn")  # portable, and safe if TensorFlow is loaded
    workers = min(cfg.workers, len(todo))
    pool = concurrent.futures.ProcessPoolExecutor(
        workers, mp_context=context, initializer=face_cropping.init_worker, initargs=(settings,)
    )
    try:
        # A bounded window in flight, collected in order. It is wide so that one slow
        # illustration does not leave the other workers idle (head-of-line blocking);
        # finished results wait in memory (a few crops each) until their turn.
        pending = collections.deque()
        for source in todo:
            pending.append((source, pool.submit(face_cropping.process_source, cfg.input, source, source in thumbs)))
            if len(pending) >= 64 * workers:
                yield _next_result(pending)
        while pending:
            yield _next_result(pending)
    finally:  # also on errors and Ctrl-C: drop what has not started
        pool.shutdown(wait=True, cancel_futures=True)


def _next_result(pending: collections.deque) -> face_cropping.SourceResult:
    source, future = pending.popleft()
    try:
        return future.result()
    except concurrent.futures.process.BrokenProcessPool:  # a worker died (killed, or a crash in a decoder)
        raise CropFacesError(
            f"a worker process died while reading {source} (or a file after it); finished illustrations "
            "are recorded: run the same command to resume, or move that file out of --input"
        ) from None


# ---------------------------------------------------------------------------
# Progress on stderr


class Progress:
    """A bar redrawn in place on a terminal; otherwise a line per 10% or per 30 s."""

    def __init__(self, total: int, stream, line_every: float = 30.0):
        self.total, self.stream, self.line_every = total, stream, line_every
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self.start = self.last_draw = time.monotonic()
        self.next_step = 1

    def update(self, done: int, faces: int) -> None:
        now = time.monotonic()
        elapsed = max(now - self.start, 1e-9)
        rate = done / elapsed
        eta = (self.total - done) / rate if rate > 0 else 0.0
        text = f"{done}/{self.total} images  {faces} faces  {rate:.2f} img/s  ETA {_hms(eta)}"
        if self.tty:
            if now - self.last_draw >= 0.1 or done == self.total:
                filled = int(30 * done / max(self.total, 1))
                self.stream.write(f"\r[{'#' * filled}{'.' * (30 - filled)}] {text}  ")
                self.stream.flush()
                self.last_draw = now
        elif done * 10 >= self.next_step * self.total or now - self.last_draw >= self.line_every:
            self.stream.write(f"progress: {text}\n")
            self.stream.flush()
            self.last_draw = now
            self.next_step = done * 10 // max(self.total, 1) + 1

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


def _hms(seconds: float) -> str:
    seconds = int(seconds + 0.5)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


# ---------------------------------------------------------------------------
# The run


def run(cfg: Config, stdout=None, stderr=None) -> Summary:
    """Builds (or resumes) the dataset described by `cfg`; prints the summary. Raises
    folder_lock.FolderLocked while another run writes into --output."""
    stdout, stderr = stdout or sys.stdout, stderr or sys.stderr
    start = time.perf_counter()
    problem = check_paths(cfg.input, cfg.output, cfg.preview_path)
    if problem:
        raise CropFacesError(problem)

    def warn(message: str) -> None:
        print(f"warning: {message}", file=stderr)

    lock = contextlib.nullcontext() if cfg.dry_run else folder_lock.hold(cfg.output, "crop_faces", warn)
    try:
        with lock:
            summary = _build(cfg, warn, stderr)
    except folder_lock.FolderLocked:
        raise
    except UserError as error:  # the lock's: --output cannot be made or written
        raise CropFacesError(str(error)) from None
    except OSError as error:  # a full disk, a folder that cannot be written: what is recorded stays
        where = error.filename or cfg.output
        raise CropFacesError(
            f"could not write {where}: {error.strerror or error} ({run_folder.free_space(cfg.output)}); the "
            "illustrations finished so far are recorded: make room and run the same command to resume"
        ) from None
    summary.seconds = time.perf_counter() - start
    print_summary(cfg, summary, stdout)
    return summary


def _build(cfg: Config, warn, stderr) -> Summary:
    try:  # the output folder first: it is the cheaper check
        dataset = face_dataset.FaceDataset(
            cfg.output, cfg.format, cfg.size, cfg.margin, cfg.shard_size, cfg.dry_run, warn
        )
        cascade_path = cascade_lib.resolve_cascade(cfg.cascade)
        face_cropping.load_cascade(cascade_path)
    except (face_dataset.DatasetError, cascade_lib.CascadeUnavailable, ValueError) as e:
        raise CropFacesError(str(e)) from None
    summary = Summary(workers=cfg.workers)
    sources, summary.ignored, made_here = list_sources(cfg.input)
    if made_here:
        shown = ", ".join(made_here[:5]) + (", ..." if len(made_here) > 5 else "")
        warn(f"skipping {len(made_here)} folder(s) inside --input that this tool made (its earlier output, "
             f"with {face_dataset.MANIFEST}); their faces are not cropped again: {shown}")
    if cfg.preview and cfg.preview_path:
        target = os.path.realpath(cfg.preview_path)
        linked = [s for s in sources + summary.ignored if os.path.realpath(os.path.join(cfg.input, s)) == target]
        if linked:
            raise CropFacesError(f"--preview_path {cfg.preview_path} is the input file {linked[0]} (through a "
                                 "link); the input is never written to")
    summary.images_found = len(sources)
    todo = [s for s in sources if not dataset.is_done(s)]
    summary.already_done = len(sources) - len(todo)
    index = face_dataset.DuplicateIndex(cfg.near_duplicate_distance)
    for row in dataset.manifest:
        index.add(row["sha256"], int(row["phash"], 16), row["id"])

    step = max(1, len(todo) // PREVIEW_ILLUSTRATIONS)
    thumbs = set(todo[::step][:PREVIEW_ILLUSTRATIONS]) if cfg.preview else set()
    illustrations: list[preview.Illustration] = []
    kept, dropped = preview.Sample(48, seed=0), preview.Sample(24, seed=1)
    settings = face_cropping.CropSettings(
        cascade_path=cascade_path, scale_factor=cfg.scale_factor, min_neighbors=cfg.min_neighbors,
        min_size=cfg.min_size, margin=cfg.margin, size=cfg.size, min_face=cfg.min_face,
        min_chroma=cfg.min_chroma, min_std=cfg.min_std,
        encoding="jpg" if cfg.format == "jpg" else "png", jpeg_quality=cfg.jpeg_quality,
        max_pixels=int(cfg.max_megapixels * 1e6), detect_max_side=cfg.detect_max_side,
    )

    progress = Progress(len(todo), stderr)
    try:
        for done, result in enumerate(_results(cfg, settings, todo, thumbs), 1):
            fates = _handle(result, dataset, index, summary, kept, dropped)
            if result.thumbnail is not None:
                illustrations.append(preview.Illustration(
                    result.source, result.thumbnail, result.thumbnail_scale,
                    [(f.detected_box, f.box, fate) for f, fate in zip(result.faces, fates)],
                ))
            progress.update(done, summary.faces_written)
        summary.shards = dataset.close()
    except BaseException:
        dataset.abort()
        raise
    finally:
        progress.close()

    if cfg.preview:
        summary.preview_path = cfg.preview_path or os.path.join(cfg.output, face_dataset.PREVIEW)
        _write_preview(summary.preview_path, illustrations, kept, dropped)
    return summary


def _handle(result, dataset, index, summary, kept, dropped) -> list[str | None]:
    """Cleans and stores the faces of one illustration; returns each face's drop reason."""
    fates: list[str | None] = []
    if result.status != "ok":
        summary.skipped.append((result.source, result.reason))
        dataset.finish_source(result, 0)
        return fates
    summary.images_read += 1
    summary.images_without_faces += not result.faces
    summary.faces_detected += len(result.faces)
    written = 0
    for face in result.faces:
        reason, detail = face.reason, {}
        if reason is None and face.face_id in dataset.manifest_ids:
            summary.faces_already_written += 1  # a source redone after an interruption
            fates.append(None)
            continue
        if reason is None:
            duplicate = index.find(face.sha256, face.phash)
            if duplicate:
                reason, detail = duplicate[0], {"duplicate_of": duplicate[1], "distance": duplicate[2]}
        if reason is None:
            outcome = dataset.add_face(result.source, face)
            if outcome == "name_conflict":
                reason = outcome
            else:
                index.add(face.sha256, face.phash, face.face_id)
                written += 1
                summary.faces_written += outcome == "written"
                summary.faces_adopted += outcome == "exists"
                kept.offer(face.encoded)
        if reason is not None:
            dataset.reject(result.source, face, reason, **detail)
            summary.dropped[reason] += 1
            dropped.offer((face.encoded, reason))
        fates.append(reason)
    dataset.finish_source(result, written)
    return fates


def _write_preview(path, illustrations, kept, dropped) -> None:
    decode = lambda data: cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    kept.items = [decode(item) for item in kept.items]
    dropped.items = [(decode(item), reason) for item, reason in dropped.items]
    sheet = preview.contact_sheet(illustrations, kept, dropped)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    ok, buf = cv2.imencode(os.path.splitext(path)[1] or ".png", sheet)
    if not ok:
        raise CropFacesError(f"cannot encode the preview as {path}")
    buf.tofile(path)


def print_summary(cfg: Config, s: Summary, out) -> None:
    verb = "would be written (dry run)" if cfg.dry_run else "written"
    done = s.images_read + len(s.skipped)
    rate = lambda n: n / s.seconds if s.seconds > 0 else 0.0
    dropped = ", ".join(f"{reason} {s.dropped.get(reason, 0)}" for reason in DROP_REASONS)
    lines = [
        f"crop_faces: {s.faces_written} faces {verb} to {cfg.output} ({cfg.format}, {cfg.size}x{cfg.size})",
        f"  illustrations: {s.images_found} found, {s.already_done} already done (resume), "
        f"{s.images_read} read, {s.images_without_faces} without faces, {len(s.skipped)} skipped",
        f"  faces: {s.faces_detected} detected, {s.faces_written} {verb}, "
        f"{sum(s.dropped.values())} dropped ({dropped})",
    ]
    if s.faces_adopted or s.faces_already_written:
        lines.append(f"  faces already on disk: {s.faces_adopted} adopted into the manifest, "
                     f"{s.faces_already_written} already in it")
    lines.append(f"  time: {s.seconds:.1f} s, {rate(done):.2f} images/s, {rate(s.faces_detected):.2f} faces/s, "
                 f"{s.workers} worker(s)")
    if not cfg.dry_run:
        lines.append(f"  records: {os.path.join(cfg.output, face_dataset.MANIFEST)}, "
                     f"{face_dataset.REJECTED}, {face_dataset.SOURCES}")
    if s.shards:
        lines.append(f"  new shards: {', '.join(s.shards)}")
    if s.preview_path:
        lines.append(f"  preview: {s.preview_path}")
    if s.ignored:
        shown = ", ".join(s.ignored[:5]) + (", ..." if len(s.ignored) > 5 else "")
        lines.append(f"  ignored {len(s.ignored)} file(s) without an image extension: {shown}")
    if s.skipped:
        lines.append(f"skipped files ({len(s.skipped)}):")
        lines += [f"  {name}: {reason}" for name, reason in s.skipped]
    print("\n".join(lines), file=out)


# ---------------------------------------------------------------------------
# Command line


def define_flags(fv=None) -> None:
    """Defines the CLI flags (only when run as a script, so importing this module
    in a process that has other absl flags causes no clash)."""
    from absl import flags

    fv = flags.FLAGS if fv is None else fv  # an empty FlagValues is falsy
    d = Config("", "")
    flags.DEFINE_string("input", None, "Folder of illustrations (searched recursively; only read).", flag_values=fv)
    flags.DEFINE_string("output", None, "Dataset folder; created if needed, resumed if it exists. "
                        "Must not be inside --input.", flag_values=fv)
    flags.DEFINE_integer("size", d.size, "Side of the square output faces in pixels (the trainer resizes).",
                         lower_bound=8, upper_bound=4096, flag_values=fv)
    flags.DEFINE_float("margin", d.margin, "Widening of each detected box on every side, as a fraction of its "
                       "side: the square crop has side (1 + 2 * margin) * box. A crop crossing the image border "
                       "is shifted inside it (never padded); one larger than the image is shrunk to fit.",
                       lower_bound=0.0, upper_bound=2.0, flag_values=fv)
    flags.DEFINE_integer("min_face", d.min_face, "Drop faces whose detected box is smaller than this (px), "
                         "reason too_small; smaller faces give blurry crops.", lower_bound=1, flag_values=fv)
    flags.DEFINE_float("scale_factor", d.scale_factor, "Detector scaleFactor (image pyramid step).",
                       lower_bound=1.01, upper_bound=2.0, flag_values=fv)
    flags.DEFINE_integer("min_neighbors", d.min_neighbors, "Detector minNeighbors (higher: fewer, surer faces).",
                         lower_bound=0, flag_values=fv)
    flags.DEFINE_integer("min_size", d.min_size, "Detector minSize in px (the smallest face it looks for).",
                         lower_bound=1, flag_values=fv)
    flags.DEFINE_integer("workers", os.cpu_count() or 1, "Worker processes over illustrations. With 1, "
                         "everything runs in this process and OpenCV threads each detection itself.",
                         lower_bound=1, upper_bound=256, flag_values=fv)
    flags.DEFINE_string("cascade", "", "Local lbpcascade_animeface.xml. Default: downloaded once into "
                        "~/.keras/models/ (sha256-checked).", flag_values=fv)
    flags.DEFINE_enum("format", d.format, ["png", "jpg", "tfrecord"], "png/jpg files, or TFRecord shards "
                      "(PNG-encoded) that train.py --path reads.", flag_values=fv)
    flags.DEFINE_integer("jpeg_quality", d.jpeg_quality, "JPEG quality for --format jpg.",
                         lower_bound=50, upper_bound=100, flag_values=fv)
    flags.DEFINE_integer("shard_size", d.shard_size, "Faces per TFRecord shard.", lower_bound=1, flag_values=fv)
    flags.DEFINE_integer("near_duplicate_distance", d.near_duplicate_distance, "Faces whose 64-bit dHash differ "
                         "in at most this many bits are near duplicates (the later one is dropped); -1 disables.",
                         lower_bound=-1, upper_bound=32, flag_values=fv)
    flags.DEFINE_float("min_chroma", d.min_chroma, "Drop near-monochrome crops (grayscale, manga, sketches): "
                       "mean of max(B,G,R) - min(B,G,R) below this (0..255); 0 disables.",
                       lower_bound=0.0, upper_bound=255.0, flag_values=fv)
    flags.DEFINE_float("min_std", d.min_std, "Drop flat crops: gray standard deviation below this; 0 disables.",
                       lower_bound=0.0, upper_bound=128.0, flag_values=fv)
    flags.DEFINE_float("max_megapixels", d.max_megapixels, "Skip larger images (decompression-bomb guard).",
                       lower_bound=0.01, flag_values=fv)
    flags.DEFINE_integer("detect_max_side", d.detect_max_side, "Images whose longer side is above this are "
                         "downscaled for detection only (crops use full resolution); 0 never downscales.",
                         lower_bound=0, flag_values=fv)
    flags.DEFINE_boolean("dry_run", False, "Detect and clean, print the summary, write no face and no record.",
                         flag_values=fv)
    flags.DEFINE_boolean("preview", False, "Write a contact sheet of detections and crops (also in a dry run).",
                         flag_values=fv)
    flags.DEFINE_string("preview_path", "", "Where --preview writes; default <output>/.preview.png (hidden so "
                        "the trainer does not read it as a face).", flag_values=fv)

    def paths_ok(v):
        problem = check_paths(v["input"], v["output"], v["preview_path"]) if v["input"] and v["output"] else None
        if problem:
            raise flags.ValidationError(problem)
        return True

    flags.register_multi_flags_validator(["input", "output", "preview_path"], paths_ok, flag_values=fv)
    flags.register_validator("cascade", lambda p: not p or os.path.isfile(p),
                             message="--cascade must be an existing file", flag_values=fv)
    flags.register_multi_flags_validator(
        ["preview", "preview_path"], lambda v: v["preview"] or not v["preview_path"],
        message="--preview_path needs --preview", flag_values=fv)
    flags.mark_flags_as_required(["input", "output"], flag_values=fv)


def config_from_flags(fv) -> Config:
    return Config(**{field.name: fv[field.name].value for field in dataclasses.fields(Config)})


def main(argv) -> int:
    from absl import flags

    if len(argv) > 1:
        print(f"error: unexpected arguments: {' '.join(argv[1:])}", file=sys.stderr)
        return 2
    try:
        run(config_from_flags(flags.FLAGS))
    except folder_lock.FolderLocked as e:  # another run writes into --output
        print(f"error: {e}", file=sys.stderr)
        return 2
    except (CropFacesError, face_dataset.DatasetError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted: run the same command again to resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    from absl import app

    define_flags()
    app.run(main)

"""The output folder: faces, the records that trace them, resume, duplicates.

Layout of `--output`:

    <face id>.png | .jpg            one file per face (--format png / jpg)
    faces-00000-of-00002.tfrecord   shards of tf.train.Example (--format tfrecord)
    manifest.jsonl                  one JSON line per written face
    rejected.jsonl                  one JSON line per dropped face and its reason
    sources.jsonl                   one JSON line per illustration handled: the resume record
    .preview.png                    contact sheet (--preview); hidden so trainers skip it
    .illustration-gan.lock          held while a run writes (illustration_gan/folder_lock.py)

Resume: an illustration listed in sources.jsonl with status "ok" is not
processed again; skipped (unreadable) ones are retried, and a retry adds a
row only when its outcome differs from the recorded one (the last row of a
source is its current record), so re-runs never duplicate rows. Known faces (manifest)
seed the duplicate index, so a later run never adds a copy of an earlier face.
Nothing is overwritten: a face file that exists but is not in the manifest is
adopted if its bytes are identical (a run interrupted between the two writes)
and otherwise left alone, the new face being dropped as "name_conflict".
A non-empty --output without sources.jsonl is refused, and so is a resume
with a different --size, --margin or --format; sources.jsonl is created
before the first face is written, so a folder the tool began is always its own.

A failed write (a full disk) loses nothing recorded: the rows of one
illustration reach the three records together or not at all (a failed append
is cut back), and the face files of an illustration that was not recorded are
removed, so the next run redoes exactly the unrecorded illustrations.

TFRecord: each run writes its own new shards; old shards are never rewritten
or renamed. Shards are written as hidden `.partial` files and renamed at the
end of the run to `faces-{index:05d}-of-{total:05d}.tfrecord`, where the first
run's indices start at 0 and a resumed run continues after the highest index
present (its `total` counts all shards so far, so the first run's names are
exactly `faces-00000-of-N`). Their manifest, rejected and sources lines are
written only then, so an interrupted run leaves no half-recorded shard: its
`.partial` files are deleted (with a warning) by the next run, which redoes
those illustrations.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys

from data_tools import face_cropping
from data_tools.cascade import sha256_of
from illustration_gan.folder_lock import LOCK_FILE

MANIFEST = "manifest.jsonl"
REJECTED = "rejected.jsonl"
SOURCES = "sources.jsonl"
PREVIEW = ".preview.png"
SHARD_RE = re.compile(r"^faces-(\d{5,})-of-(\d{5,})\.tfrecord$")
OWN_FILES = {MANIFEST, REJECTED, SOURCES, PREVIEW, LOCK_FILE}


class DatasetError(Exception):
    """The output folder cannot be used as asked; the message says why."""


def read_jsonl(path: str) -> list[dict]:
    if not os.path.exists(path):
        return []
    rows = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                raise DatasetError(f"{path}:{number} is not valid JSON; fix or remove that line") from None
    return rows


class DuplicateIndex:
    """Exact duplicates by sha256, near duplicates by 64-bit dHash.

    Near-duplicate search is a multi-index hash: the 64 bits are cut into
    max_distance + 1 chunks; two hashes within max_distance bits agree exactly
    on at least one chunk (pigeonhole), so only faces sharing a chunk value are
    compared. max_distance < 0 disables near-duplicate detection.
    """

    def __init__(self, max_distance: int):
        self.max_distance = max_distance
        self.by_sha: dict[str, str] = {}
        self.hashes: list[tuple[int, str]] = []
        chunks = max(1, max_distance + 1)
        edges = [round(64 * k / chunks) for k in range(chunks + 1)]
        self._chunks = [(lo, hi - lo) for lo, hi in zip(edges, edges[1:]) if hi > lo]
        self._tables: list[dict[int, list[int]]] = [{} for _ in self._chunks]

    def _keys(self, phash: int):
        for (lo, width), table in zip(self._chunks, self._tables):
            yield table, (phash >> lo) & ((1 << width) - 1)

    def find(self, sha256: str, phash: int) -> tuple[str, str, int] | None:
        """(reason, id of the earlier face, Hamming distance) or None."""
        if sha256 in self.by_sha:
            return "duplicate", self.by_sha[sha256], 0
        if self.max_distance < 0:
            return None
        best = None
        for table, key in self._keys(phash):
            for k in table.get(key, ()):
                other, other_id = self.hashes[k]
                distance = (phash ^ other).bit_count()
                if distance <= self.max_distance and (best is None or (distance, k) < best[:2]):
                    best = (distance, k, other_id)
        return None if best is None else ("near_duplicate", best[2], best[0])

    def add(self, sha256: str, phash: int, face_id: str) -> None:
        self.by_sha.setdefault(sha256, face_id)
        self.hashes.append((phash, face_id))
        for table, key in self._keys(phash):
            table.setdefault(key, []).append(len(self.hashes) - 1)


class FaceDataset:
    """Writes faces and their records into --output (or only pretends: dry_run)."""

    def __init__(self, output: str, fmt: str, size: int, margin: float, shard_size: int = 1000,
                 dry_run: bool = False, warn=None):
        self.output, self.fmt, self.size, self.margin = output, fmt, size, margin
        self.shard_size, self.dry_run = shard_size, dry_run
        self.warn = warn or (lambda message: print(f"warning: {message}", file=sys.stderr))
        self.manifest = read_jsonl(os.path.join(output, MANIFEST))
        self.manifest_ids = {row["id"] for row in self.manifest}
        sources = read_jsonl(os.path.join(output, SOURCES))
        self.done_sources = {row["source"] for row in sources if row.get("status") == "ok"}
        # The current record of each source (the last row): a retry with the same outcome adds no row.
        self._source_rows = {row["source"]: _canonical(row) for row in sources}
        self._check_folder(bool(self.manifest) or os.path.exists(os.path.join(output, SOURCES)))
        self._pending: dict[str, list[dict]] = {MANIFEST: [], REJECTED: [], SOURCES: []}
        self._pending_files: list[str] = []  # face files written whose rows are not on disk yet
        self._shards: list[str] = []  # partial shard paths of this run
        self._shard_counts: list[int] = []
        self._writer = None
        self._tf = _import_tensorflow() if fmt == "tfrecord" and not dry_run else None

    # -- opening ---------------------------------------------------------------

    def _check_folder(self, has_records: bool) -> None:
        if not os.path.isdir(self.output):
            if os.path.exists(self.output):
                raise DatasetError(f"--output {self.output} exists and is not a folder")
            return
        entries = [e for e in os.listdir(self.output) if e not in OWN_FILES and not e.endswith(".partial")]
        if entries and not has_records:
            raise DatasetError(
                f"--output {self.output} is not empty and has no {SOURCES}: it was not made by this "
                "tool; choose a new or empty folder"
            )
        if self.manifest:
            first = self.manifest[0]
            built = (first.get("size"), first.get("margin"), first.get("format"))
            if built != (self.size, self.margin, self.fmt):
                raise DatasetError(
                    f"--output {self.output} was built with --size {built[0]} --margin {built[1]} "
                    f"--format {built[2]}; resume with the same values or choose a new --output"
                )
        stale = [e for e in os.listdir(self.output) if e.startswith(".") and e.endswith(".partial")]
        if stale and not self.dry_run:
            for name in stale:
                os.remove(os.path.join(self.output, name))
            self.warn(f"removed {len(stale)} unfinished file(s) of an interrupted run in {self.output}")

    def is_done(self, source: str) -> bool:
        return source in self.done_sources

    # -- writing -----------------------------------------------------------------

    def add_face(self, source: str, face: face_cropping.FaceCandidate) -> str:
        """Stores one accepted face: "written", "exists" (identical file adopted) or "name_conflict"."""
        row = {
            "id": face.face_id, "file": None, "source": source, "box": list(face.box),
            "detected_box": list(face.detected_box), "margin": self.margin, "size": self.size,
            "format": self.fmt, "sha256": face.sha256, "phash": f"{face.phash:016x}",
            "chroma": face.chroma, "std": face.std,
        }
        if self.fmt == "tfrecord":
            outcome = "written" if self.dry_run else self._add_record(source, face, row)
        else:
            outcome = self._add_file(face, row)
        if outcome != "name_conflict":
            self.manifest_ids.add(face.face_id)
        return outcome

    def _add_file(self, face: face_cropping.FaceCandidate, row: dict) -> str:
        name = f"{face.face_id}.{self.fmt}"
        path = os.path.join(self.output, name)
        row["file"] = name
        if os.path.exists(path):
            if sha256_of(path) != face.sha256:
                self.warn(f"not overwriting {path}: it exists, is not in {MANIFEST} and differs from the new crop")
                return "name_conflict"
            outcome = "exists"
        else:
            outcome = "written"
            if not self.dry_run:
                self._claim()
                partial = os.path.join(self.output, f".{name}.partial")
                try:
                    with open(partial, "wb") as f:
                        f.write(face.encoded)
                    os.replace(partial, path)
                except OSError as error:
                    _remove(partial)
                    error.filename = error.filename or path  # a failed write does not name its file
                    raise
                self._pending_files.append(path)
        self._pending[MANIFEST].append(row)
        return outcome

    def _add_record(self, source: str, face: face_cropping.FaceCandidate, row: dict) -> str:
        if self._writer is None or self._shard_counts[-1] >= self.shard_size:
            self._open_shard()
        tf = self._tf
        feature = {
            "image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(value=[face.encoded])),
            "image/source": tf.train.Feature(bytes_list=tf.train.BytesList(value=[source.encode("utf-8")])),
            "image/box": tf.train.Feature(int64_list=tf.train.Int64List(value=list(face.box))),
            "image/sha256": tf.train.Feature(bytes_list=tf.train.BytesList(value=[face.sha256.encode("ascii")])),
        }
        example = tf.train.Example(features=tf.train.Features(feature=feature))
        self._writer.write(example.SerializeToString())
        row["file"] = len(self._shards) - 1  # shard number within this run; named in close()
        row["record"] = self._shard_counts[-1]
        self._shard_counts[-1] += 1
        self._pending[MANIFEST].append(row)
        return "written"

    def _open_shard(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._claim()
        path = os.path.join(self.output, f".faces-run-{len(self._shards):05d}.tfrecord.partial")
        self._writer = self._tf.io.TFRecordWriter(path)
        self._shards.append(path)
        self._shard_counts.append(0)

    def reject(self, source: str, face: face_cropping.FaceCandidate, reason: str, **detail) -> None:
        row = {
            "id": face.face_id, "source": source, "box": list(face.box),
            "detected_box": list(face.detected_box), "reason": reason, **detail,
            "sha256": face.sha256, "phash": f"{face.phash:016x}", "chroma": face.chroma, "std": face.std,
        }
        self._pending[REJECTED].append(row)

    def finish_source(self, result: face_cropping.SourceResult, written: int) -> None:
        """Records that an illustration is done; png/jpg rows reach the disk now."""
        row = {
            "source": result.source, "status": result.status, "reason": result.reason,
            "width": result.width, "height": result.height, "bytes": result.file_size,
            "faces_detected": len(result.faces), "faces_written": written, "notes": result.notes,
        }
        if self._source_rows.get(result.source) != _canonical(row):  # a retried skip that failed alike: no row
            self._source_rows[result.source] = _canonical(row)
            self._pending[SOURCES].append(row)
        if result.status == "ok":
            self.done_sources.add(result.source)
        if self.fmt != "tfrecord":
            self._flush()

    def _claim(self) -> None:
        """Before the first write: the folder, with its (maybe empty) resume record."""
        if not os.path.exists(os.path.join(self.output, SOURCES)):
            os.makedirs(self.output, exist_ok=True)
            open(os.path.join(self.output, SOURCES), "a").close()

    def _flush(self) -> None:
        if self.dry_run:
            for rows in self._pending.values():
                rows.clear()
            return
        names = [name for name in (MANIFEST, REJECTED, SOURCES) if self._pending[name]]
        if not names:
            return
        self._claim()
        paths = {name: os.path.join(self.output, name) for name in names}
        sizes = {name: os.path.getsize(p) if os.path.exists(p) else 0 for name, p in paths.items()}
        name = names[0]
        try:  # faces, then their rejections, then the source: the order resume relies on
            for name in names:
                with open(paths[name], "a", encoding="utf-8") as f:
                    f.writelines(json.dumps(row, sort_keys=True) + "\n" for row in self._pending[name])
        except OSError as error:  # all or nothing: cut every record back (a shorter file needs no space)
            for cut in names:
                with contextlib.suppress(OSError):
                    os.truncate(paths[cut], sizes[cut])
            error.filename = error.filename or paths[name]
            raise
        for name in names:
            self._pending[name].clear()
        self._pending_files.clear()

    def close(self) -> list[str]:
        """Finishes the run; returns the new shard names (tfrecord)."""
        names: list[str] = []
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._shards:
            first = self._next_shard_index()
            total = first + len(self._shards)
            names = [f"faces-{first + k:05d}-of-{total:05d}.tfrecord" for k in range(len(self._shards))]
            for partial, name in zip(self._shards, names):
                target = os.path.join(self.output, name)
                if os.path.exists(target):  # cannot happen: first is past every existing index
                    raise DatasetError(f"refusing to overwrite {target}")
                os.replace(partial, target)
            for row in self._pending[MANIFEST]:
                row["file"] = names[row["file"]]
            self._shards = []
        self._flush()
        return names

    def abort(self) -> None:
        """Stops after an error: closes the shard writer, keeps what is recorded, and removes the
        face files of an illustration whose rows are not (it is redone by the next run)."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        for path in self._pending_files:
            _remove(path)
        self._pending_files.clear()
        for rows in self._pending.values():
            rows.clear()

    def _next_shard_index(self) -> int:
        indices = [int(m.group(1)) for m in map(SHARD_RE.match, os.listdir(self.output)) if m]
        return max(indices) + 1 if indices else 0


def _remove(path: str) -> None:
    with contextlib.suppress(OSError):
        os.remove(path)


def _canonical(row: dict) -> str:
    return json.dumps(row, sort_keys=True)


def _import_tensorflow():
    """TensorFlow, imported only for --format tfrecord (before any work starts)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import tensorflow as tf
    except ImportError:
        raise DatasetError("--format tfrecord needs TensorFlow; use --format png or install it") from None
    return tf

"""Tests of data_tools/crop_faces.py (the anime-face dataset builder).

Real data: ../shared/data/illustrations and ../shared/data/lbpcascade_animeface.xml
beside the project root; tests that need them skip with the reason when absent.
"""

from __future__ import annotations

import errno
import functools
import hashlib
import json
import signal
import http.server
import io
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
ILLUSTRATIONS = SHARED / "illustrations"
CASCADE = SHARED / "lbpcascade_animeface.xml"
sys.path.insert(0, str(ROOT))

from data_tools import cascade as cascade_lib  # noqa: E402
from data_tools import crop_faces, face_cropping, face_dataset, image_io  # noqa: E402
from illustration_gan import folder_lock  # noqa: E402

# Small illustrations with 0 to 5 faces (two are PNGs with alpha named .jpg,
# one has faces below --min_face), to keep the tests fast.
SUBSET = [
    "jlaoo_ahagon_umiko_19.jpg", "jlaoo_ahagon_umiko_46.jpg", "jlaoo_lijima_yun_1.jpg",
    "jlaoo_lijima_yun_108.jpg", "jlaoo_lijima_yun_25.jpg", "jlaoo_sakura_nene_26.jpg",
    "mukosame_anime2sketch_saber.png", "xavierjiezou_test_4.jpg",
]


@pytest.fixture(scope="module")
def cascade_path() -> str:
    if not CASCADE.is_file():
        pytest.skip(f"shared detector {CASCADE} is absent")
    return str(CASCADE)


@pytest.fixture(scope="module")
def shared_illustrations() -> Path:
    if not ILLUSTRATIONS.is_dir():
        pytest.skip(f"shared illustrations {ILLUSTRATIONS} are absent")
    return ILLUSTRATIONS


def make_input(folder: Path, names, source: Path = ILLUSTRATIONS) -> Path:
    """An input folder of symlinks to shared illustrations (never copies them into the repo)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).symlink_to(source / name)
    return folder


def config(input_dir, output_dir, cascade, **overrides) -> crop_faces.Config:
    overrides.setdefault("workers", 1)
    return crop_faces.Config(input=str(input_dir), output=str(output_dir), cascade=cascade, **overrides)


def run_quiet(cfg: crop_faces.Config) -> crop_faces.Summary:
    return crop_faces.run(cfg, stdout=io.StringIO(), stderr=io.StringIO())


def jsonl(path: Path) -> list[dict]:
    return face_dataset.read_jsonl(str(path))


def snapshot(folder: Path) -> dict[str, tuple[int, str]]:
    """Every file below folder -> (mtime_ns, sha256)."""
    out = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            out[str(path.relative_to(folder))] = (path.stat().st_mtime_ns, hashlib.sha256(path.read_bytes()).hexdigest())
    return out


# ---------------------------------------------------------------------------
# Detection equals the cascade called directly


def test_faces_per_image_equal_a_direct_cascade_call(tmp_path, cascade_path, shared_illustrations):
    input_dir = make_input(tmp_path / "in", SUBSET)
    summary = run_quiet(config(input_dir, tmp_path / "out", cascade_path))

    detector = cv2.CascadeClassifier(cascade_path)
    expected = {}
    for name in SUBSET:
        gray = cv2.equalizeHist(cv2.cvtColor(cv2.imread(str(shared_illustrations / name)), cv2.COLOR_BGR2GRAY))
        expected[name] = len(detector.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(24, 24)))
    found = {row["source"]: row["faces_detected"] for row in jsonl(tmp_path / "out" / "sources.jsonl")}
    assert found == expected
    assert sum(expected.values()) >= 10 and expected["mukosame_anime2sketch_saber.png"] == 0
    # Every detection is accounted for: written or dropped with a reason.
    manifest, rejected = jsonl(tmp_path / "out" / "manifest.jsonl"), jsonl(tmp_path / "out" / "rejected.jsonl")
    assert len(manifest) + len(rejected) == sum(expected.values()) == summary.faces_detected
    assert summary.faces_written == len(manifest) and summary.images_without_faces == 1
    assert {r["reason"] for r in rejected} == {"too_small"}  # the 48 px face of xavierjiezou_test_4
    assert all(min(r["detected_box"][2:]) < 64 for r in rejected)
    for row in manifest:
        image = cv2.imread(str(tmp_path / "out" / row["file"]))
        assert image.shape == (128, 128, 3)
        assert hashlib.sha256((tmp_path / "out" / row["file"]).read_bytes()).hexdigest() == row["sha256"]


def test_large_images_are_downscaled_for_detection_only(cascade_path, shared_illustrations):
    bgr = cv2.imread(str(shared_illustrations / "jlaoo_ahagon_umiko_19.jpg"))  # 850x600
    settings = face_cropping.CropSettings(cascade_path=cascade_path, detect_max_side=425)
    boxes = face_cropping.detect_faces(face_cropping.load_cascade(cascade_path), bgr, settings)
    half = cv2.resize(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY), None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
    direct = cv2.CascadeClassifier(cascade_path).detectMultiScale(cv2.equalizeHist(half), 1.1, 5, minSize=(24, 24))
    assert len(boxes) == len(direct) >= 1
    assert sorted(boxes, key=lambda b: (b[1], b[0])) == boxes  # sorted by (y, x)
    assert sorted(tuple(2 * int(v) for v in b) for b in direct) == sorted(boxes)  # in source pixels


def test_results_do_not_depend_on_the_number_of_workers(tmp_path, cascade_path, shared_illustrations):
    names = SUBSET[:4]
    one = run_quiet(config(make_input(tmp_path / "in", names), tmp_path / "w1", cascade_path, workers=1))
    two = run_quiet(config(tmp_path / "in", tmp_path / "w2", cascade_path, workers=2))
    assert one.faces_written == two.faces_written > 0
    assert jsonl(tmp_path / "w1" / "manifest.jsonl") == jsonl(tmp_path / "w2" / "manifest.jsonl")


# ---------------------------------------------------------------------------
# Margins and squares


@pytest.mark.parametrize(
    "box, margin, expected",
    [
        ((100, 80, 40, 40), 0.25, (90, 70, 60, 60)),  # widened by 10 px on each side, centred
        ((100, 80, 40, 40), 0.0, (100, 80, 40, 40)),
        ((100, 80, 40, 30), 0.5, (80, 55, 80, 80)),  # square from the longer side, same centre
        ((2, 5, 40, 40), 0.5, (0, 0, 80, 80)),  # crosses the top-left corner: shifted inside
        ((270, 150, 30, 30), 0.5, (240, 120, 60, 60)),  # crosses the bottom-right corner: shifted inside
        ((50, 20, 150, 150), 1.0, (35, 0, 180, 180)),  # larger than the image: shrunk to its height
    ],
)
def test_square_box_widens_centres_and_shifts_inside(box, margin, expected):
    assert face_cropping.square_box(box, margin, image_width=300, image_height=180) == expected


def test_crop_is_the_square_region_resized_with_area_interpolation(tmp_path):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (180, 300, 3), dtype=np.uint8)
    settings = face_cropping.CropSettings(cascade_path="", margin=0.5, size=32, min_face=10, min_chroma=0, min_std=0)
    face = face_cropping._candidate(image, "sub/pic.png", (270, 150, 30, 30), settings)
    x, y, side, side_h = face.box
    assert (x, y, side, side_h) == (240, 120, 60, 60) and x + side <= 300 and y + side <= 180
    crop = cv2.imdecode(np.frombuffer(face.encoded, np.uint8), cv2.IMREAD_COLOR)
    expected = cv2.resize(image[120:180, 240:300], (32, 32), interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(crop, expected)  # PNG is lossless
    assert face.face_id.startswith("sub__pic_") and face.face_id.endswith("_x240_y120_s60")
    assert face.sha256 == hashlib.sha256(face.encoded).hexdigest()


# ---------------------------------------------------------------------------
# Cleaning


def test_duplicates_and_near_duplicates_are_dropped(tmp_path, cascade_path, shared_illustrations):
    original = cv2.imread(str(shared_illustrations / "jlaoo_ahagon_umiko_19.jpg"))
    input_dir = tmp_path / "in"
    (input_dir / "copies").mkdir(parents=True)
    cv2.imwrite(str(input_dir / "a.png"), original)
    cv2.imwrite(str(input_dir / "copies" / "same.png"), original)  # exact copy under another name
    darker = cv2.convertScaleAbs(original, alpha=1.0, beta=-3)  # same detections, other bytes, same dHash
    cv2.imwrite(str(input_dir / "copies" / "darker.png"), darker)
    summary = run_quiet(config(input_dir, tmp_path / "out", cascade_path))

    assert summary.faces_detected == 9
    assert summary.faces_written == 3
    assert summary.dropped["duplicate"] == 3 and summary.dropped["near_duplicate"] == 3
    manifest = jsonl(tmp_path / "out" / "manifest.jsonl")
    assert {row["source"] for row in manifest} == {"a.png"}  # the first source in sorted order wins
    kept_ids = {row["id"] for row in manifest}
    rejected = jsonl(tmp_path / "out" / "rejected.jsonl")
    assert {r["duplicate_of"] for r in rejected} == kept_ids
    assert all(r["distance"] == 0 for r in rejected if r["reason"] == "duplicate")
    assert all(r["distance"] <= 4 for r in rejected if r["reason"] == "near_duplicate")
    assert len(list((tmp_path / "out").glob("*.png"))) == 3


def test_near_duplicate_index_matches_brute_force():
    rng = np.random.default_rng(1)
    stored = [int(v) for v in rng.integers(0, 2**63, 300, dtype=np.int64)]
    index = face_dataset.DuplicateIndex(max_distance=4)
    for k, h in enumerate(stored):
        index.add(f"sha{k}", h, f"face{k}")
    for k, h in enumerate(stored[:50]):
        for flips in range(7):
            bits = rng.choice(64, flips, replace=False)
            query = h ^ sum(1 << int(b) for b in bits)
            brute = min((bin(query ^ s).count("1"), j) for j, s in enumerate(stored))
            found = index.find("new", query)
            if brute[0] <= 4:
                assert found == ("near_duplicate", f"face{brute[1]}", brute[0])
            else:
                assert found is None
    assert index.find("sha7", 0) == ("duplicate", "face7", 0)
    assert face_dataset.DuplicateIndex(-1).find("x", 0) is None


def test_monochrome_and_flat_crops_are_dropped():
    settings = face_cropping.CropSettings(cascade_path="", margin=0.0, size=32, min_face=10)
    rng = np.random.default_rng(2)
    colour = rng.integers(0, 256, (100, 100, 3), dtype=np.uint8)
    gray = cv2.cvtColor(cv2.cvtColor(colour, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    flat = np.full((100, 100, 3), (30, 120, 200), np.uint8)
    reasons = [face_cropping._candidate(im, "x.png", (10, 10, 60, 60), settings).reason for im in (colour, gray, flat)]
    assert reasons == [None, "monochrome", "flat"]
    assert face_cropping._candidate(colour, "x.png", (10, 10, 9, 9), settings).reason == "too_small"


# ---------------------------------------------------------------------------
# Resume and overwriting


def test_second_run_writes_nothing_new_and_never_overwrites(tmp_path, cascade_path, shared_illustrations):
    input_dir = make_input(tmp_path / "in", SUBSET[:3])
    out = tmp_path / "out"
    first = run_quiet(config(input_dir, out, cascade_path))
    assert first.faces_written >= 3
    before = snapshot(out)
    second = run_quiet(config(input_dir, out, cascade_path))
    assert second.already_done == 3 and second.images_read == 0 and second.faces_written == 0
    assert snapshot(out) == before

    # A new illustration is added; a file with one of its future names exists with other content.
    make_input(input_dir, ["jlaoo_lijima_yun_25.jpg"])
    expected_ids = _ids_for(shared_illustrations / "jlaoo_lijima_yun_25.jpg", "jlaoo_lijima_yun_25.jpg", cascade_path)
    squatter = out / f"{expected_ids[0]}.png"
    squatter.write_bytes(b"not this face")
    third = run_quiet(config(input_dir, out, cascade_path))
    assert third.images_read == 1 and third.dropped["name_conflict"] == 1
    assert squatter.read_bytes() == b"not this face"
    assert len(jsonl(out / "manifest.jsonl")) == first.faces_written + third.faces_written

    with pytest.raises(crop_faces.CropFacesError, match="--size 128"):
        run_quiet(config(input_dir, out, cascade_path, size=64))


def _ids_for(path: Path, source: str, cascade_path: str) -> list[str]:
    settings = face_cropping.CropSettings(cascade_path=cascade_path)
    face_cropping.init_worker(settings)
    result = face_cropping.process_source(str(path.parent), path.name)
    assert result.status == "ok" and result.faces
    return [face_cropping.face_id(source, f.box) for f in result.faces]


def test_refuses_unknown_non_empty_output_and_output_inside_input(tmp_path, cascade_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "photo.png").write_bytes(b"x")
    with pytest.raises(crop_faces.CropFacesError, match="not made by this tool"):
        run_quiet(config(tmp_path / "in", tmp_path / "other", cascade_path))
    with pytest.raises(crop_faces.CropFacesError, match="inside --input"):
        run_quiet(config(tmp_path / "in", tmp_path / "in" / "faces", cascade_path))
    assert list((tmp_path / "in").iterdir()) == []


# ---------------------------------------------------------------------------
# Bad and unusual inputs


def _png_with_size_header(width: int, height: int) -> bytes:
    ok, buf = cv2.imencode(".png", np.zeros((4, 4, 3), np.uint8))
    data = bytearray(buf.tobytes())
    data[16:24] = width.to_bytes(4, "big") + height.to_bytes(4, "big")
    return bytes(data)


def test_bad_files_are_reported_and_skipped(tmp_path, cascade_path, shared_illustrations):
    from PIL import Image

    source = shared_illustrations / "jlaoo_lijima_yun_1.jpg"  # one face
    bgr = cv2.imread(str(source))
    input_dir = tmp_path / "in"
    input_dir.mkdir()
    (input_dir / "text.jpg").write_text("this is not an image")
    (input_dir / "empty.png").write_bytes(b"")
    (input_dir / "cut.jpg").write_bytes(source.read_bytes()[:20000])
    (input_dir / "bomb.png").write_bytes(_png_with_size_header(100_000, 100_000))
    (input_dir / "notes.txt").write_text("ignored")
    cv2.imwrite(str(input_dir / "tiny.png"), bgr[:20, :20])
    cv2.imwrite(str(input_dir / "gray.png"), cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY))
    cv2.imwrite(str(input_dir / "deep16.png"), bgr.astype(np.uint16) * 257)
    rgba = cv2.cvtColor(bgr, cv2.COLOR_BGR2BGRA)
    rgba[:100, :, 3] = 0  # a transparent band at the top
    cv2.imwrite(str(input_dir / "alpha.png"), rgba)
    Image.fromarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)).convert("CMYK").save(input_dir / "cmyk.jpg", quality=95)
    before = snapshot(input_dir)

    summary = run_quiet(config(input_dir, tmp_path / "out", cascade_path))

    skipped = dict(summary.skipped)
    assert set(skipped) == {"text.jpg", "empty.png", "cut.jpg", "bomb.png", "tiny.png"}
    assert "not an image" in skipped["text.jpg"] and "empty" in skipped["empty.png"]
    assert "truncated" in skipped["cut.jpg"] and "too large" in skipped["bomb.png"]
    assert "too small" in skipped["tiny.png"]
    assert summary.ignored == ["notes.txt"]
    sources = {r["source"]: r for r in jsonl(tmp_path / "out" / "sources.jsonl")}
    for name in ("gray.png", "deep16.png", "alpha.png", "cmyk.jpg"):
        assert sources[name]["status"] == "ok" and sources[name]["faces_detected"] == 1, name
    assert "16-bit -> 8-bit" in sources["deep16.png"]["notes"]
    assert "alpha composited on white" in sources["alpha.png"]["notes"]
    rejected = {r["source"]: r["reason"] for r in jsonl(tmp_path / "out" / "rejected.jsonl")}
    assert rejected["gray.png"] == "monochrome"
    assert snapshot(input_dir) == before  # the input folder is untouched

    # The summary names the skipped files and their reasons.
    text = io.StringIO()
    crop_faces.print_summary(config(input_dir, tmp_path / "out", cascade_path), summary, text)
    assert "skipped files (5)" in text.getvalue() and "cut.jpg: truncated" in text.getvalue()


def test_pixel_formats_are_normalised_to_bgr():
    from PIL import Image

    def encoded(image: Image.Image, fmt: str, **kw) -> bytes:
        buf = io.BytesIO()
        image.save(buf, fmt, **kw)
        return buf.getvalue()

    red_cmyk = image_io.decode_image(encoded(Image.new("CMYK", (8, 6), (0, 255, 255, 0)), "JPEG", quality=100), 10**6)
    b, g, r = red_cmyk.bgr[3, 4].astype(int)
    assert red_cmyk.bgr.shape == (6, 8, 3) and r > 240 and g < 15 and b < 15
    half_alpha = image_io.decode_image(encoded(Image.new("RGBA", (4, 4), (0, 0, 0, 128)), "PNG"), 10**6)
    assert abs(int(half_alpha.bgr[0, 0, 0]) - 127) <= 1  # black at 50% over white
    deep = image_io.decode_image(cv2.imencode(".png", np.full((3, 3), 65535, np.uint16))[1].tobytes(), 10**6)
    assert deep.bgr.dtype == np.uint8 and deep.bgr.shape == (3, 3, 3) and (deep.bgr == 255).all()
    with pytest.raises(image_io.UnreadableImage, match="too large"):
        image_io.decode_image(_png_with_size_header(5000, 5000), max_pixels=10**6)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_matches_pillow(orientation):
    from PIL import Image, ImageOps

    rng = np.random.default_rng(orientation)
    pixels = rng.integers(0, 256, (6, 10, 3), dtype=np.uint8)
    pixels = cv2.resize(pixels, (40, 24), interpolation=cv2.INTER_NEAREST)  # blocks survive JPEG
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "JPEG", quality=100, exif=exif.tobytes())
    ours = image_io.decode_image(buf.getvalue(), 10**6).bgr
    reference = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(buf.getvalue()))).convert("RGB"))
    assert ours.shape == reference.shape
    assert np.abs(ours[:, :, ::-1].astype(int) - reference).mean() < 3


# ---------------------------------------------------------------------------
# TFRecord output


def test_tfrecord_output_has_the_trainer_format_and_resumes_into_new_shards(tmp_path, cascade_path, shared_illustrations):
    tf = pytest.importorskip("tensorflow")
    input_dir = make_input(tmp_path / "in", ["jlaoo_ahagon_umiko_19.jpg", "jlaoo_lijima_yun_1.jpg"])
    out = tmp_path / "out"
    first = run_quiet(config(input_dir, out, cascade_path, format="tfrecord", shard_size=3))
    assert first.faces_written == 4
    assert sorted(p.name for p in out.glob("*.tfrecord")) == ["faces-00000-of-00002.tfrecord", "faces-00001-of-00002.tfrecord"]

    spec = {
        "image/encoded": tf.io.FixedLenFeature([], tf.string),
        "image/source": tf.io.FixedLenFeature([], tf.string),
        "image/box": tf.io.FixedLenFeature([4], tf.int64),
        "image/sha256": tf.io.FixedLenFeature([], tf.string),
    }
    manifest = jsonl(out / "manifest.jsonl")
    records = []
    for row in manifest:
        dataset = tf.data.TFRecordDataset(str(out / row["file"])).skip(row["record"]).take(1)
        records.append(tf.io.parse_single_example(next(iter(dataset)), spec))
    for row, record in zip(manifest, records):
        encoded = record["image/encoded"].numpy()
        assert encoded.startswith(b"\x89PNG")
        assert tf.io.decode_png(encoded).shape == (128, 128, 3)
        assert record["image/source"].numpy().decode() == row["source"]
        assert record["image/box"].numpy().tolist() == row["box"]
        assert record["image/sha256"].numpy().decode() == row["sha256"] == hashlib.sha256(encoded).hexdigest()

    before = snapshot(out)
    make_input(input_dir, ["jlaoo_sakura_nene_26.jpg"])
    stale = out / ".faces-run-00000.tfrecord.partial"  # left by an interrupted run
    stale.write_bytes(b"half a shard")
    second = run_quiet(config(input_dir, out, cascade_path, format="tfrecord", shard_size=3))
    assert not stale.exists()
    assert second.faces_written == 2 and second.shards == ["faces-00002-of-00003.tfrecord"]
    after = snapshot(out)
    assert all(after[name] == before[name] for name in before if name.endswith(".tfrecord"))
    assert len(jsonl(out / "manifest.jsonl")) == 6


# ---------------------------------------------------------------------------
# The detector file


class _Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_cascade_is_downloaded_once_with_its_hash_and_errors_say_how_to_provide_it(tmp_path, monkeypatch, cascade_path):
    pytest.importorskip("keras")
    served = tmp_path / "served"
    served.mkdir()
    shutil.copy(cascade_path, served / "lbpcascade_animeface.xml")
    (served / "wrong.xml").write_text("<opencv_storage/>")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Handler, directory=str(served)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    try:
        path = cascade_lib.resolve_cascade(url=f"{base}/lbpcascade_animeface.xml")
        assert path == str(tmp_path / "keras" / "models" / "lbpcascade_animeface.xml")
        assert cascade_lib.sha256_of(path) == cascade_lib.CASCADE_SHA256
        with pytest.raises(cascade_lib.CascadeUnavailable, match="--cascade"):
            os.remove(path)
            cascade_lib.resolve_cascade(url=f"{base}/wrong.xml")
        assert not os.path.exists(path)  # a file with the wrong hash is not kept
        cascade_lib.resolve_cascade(url=f"{base}/lbpcascade_animeface.xml")
    finally:
        server.shutdown()
        server.server_close()
    # Cached now: no network needed any more.
    assert cascade_lib.resolve_cascade(url="http://127.0.0.1:9/unreachable.xml") == path
    os.remove(path)
    with pytest.raises(cascade_lib.CascadeUnavailable) as error:
        cascade_lib.resolve_cascade(url="http://127.0.0.1:9/unreachable.xml")
    assert "--cascade /path/to/lbpcascade_animeface.xml" in str(error.value)
    assert cascade_lib.CASCADE_URL in str(error.value)


# ---------------------------------------------------------------------------
# The command line


def _cli(*args, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "data_tools/crop_faces.py", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, **kw)


def test_command_line_run_with_preview_and_jpg(tmp_path, cascade_path, shared_illustrations):
    input_dir = make_input(tmp_path / "in", ["jlaoo_ahagon_umiko_19.jpg", "xavierjiezou_test_4.jpg"])
    out = tmp_path / "faces"
    done = _cli("--input", str(input_dir), "--output", str(out), "--cascade", cascade_path,
                "--format", "jpg", "--size", "96", "--workers", "2", "--preview")
    assert done.returncode == 0, done.stderr
    assert "7 faces written" in done.stdout and "too_small 1" in done.stdout
    faces = sorted(out.glob("*.jpg"))
    assert len(faces) == 7 and cv2.imread(str(faces[0])).shape == (96, 96, 3)
    sheet = cv2.imread(str(out / ".preview.png"))
    assert sheet is not None and sheet.shape[1] == 1400 and sheet.shape[0] > 300

    dry = _cli("--input", str(input_dir), "--output", str(tmp_path / "dry"), "--cascade", cascade_path, "--dry_run")
    assert dry.returncode == 0 and "would be written (dry run)" in dry.stdout
    assert not (tmp_path / "dry").exists()


def test_command_line_rejects_bad_flags_in_one_line(tmp_path, cascade_path):
    (tmp_path / "in").mkdir()
    bad_size = _cli("--input", str(tmp_path / "in"), "--output", str(tmp_path / "o"), "--size", "2")
    assert bad_size.returncode != 0 and "--size" in bad_size.stderr.splitlines()[0]
    inside = _cli("--input", str(tmp_path / "in"), "--output", str(tmp_path / "in" / "o"))
    assert inside.returncode != 0 and "inside --input" in inside.stderr
    no_cascade = _cli("--input", str(tmp_path / "in"), "--output", str(tmp_path / "o"), "--cascade", "/nope.xml")
    assert no_cascade.returncode != 0 and "--cascade" in no_cascade.stderr


def test_png_output_does_not_import_tensorflow(tmp_path, cascade_path, shared_illustrations):
    input_dir = make_input(tmp_path / "in", ["jlaoo_lijima_yun_1.jpg"])
    code = (
        "import io, sys; sys.path.insert(0, '.');"
        "from data_tools import crop_faces as c;"
        f"s = c.run(c.Config(input={str(input_dir)!r}, output={str(tmp_path / 'o')!r}, cascade={cascade_path!r}),"
        " stdout=io.StringIO(), stderr=io.StringIO());"
        "print(s.faces_written, sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')))"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1", "[]"]


# ---------------------------------------------------------------------------
# The output trains


def test_output_trains_for_one_short_epoch(tmp_path, cascade_path, shared_illustrations):
    if not (ROOT / "train.py").exists():
        pytest.skip("train.py does not exist yet")
    input_dir = make_input(tmp_path / "in", SUBSET[:6])
    out = tmp_path / "faces"
    summary = run_quiet(config(input_dir, out, cascade_path, size=64, format="tfrecord"))
    assert summary.faces_written >= 8
    done = subprocess.run(
        [sys.executable, "train.py", "--TYPE", "train", "--path", str(out), "--epochs", "1",
         "--batch_size", "8", "--image_size", "32", "--precision", "float32", "--run_root", str(tmp_path / "runs")],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]


def test_re_runs_add_no_duplicate_sources_rows(tmp_path, cascade_path, shared_illustrations):
    input_dir = make_input(tmp_path / "in", SUBSET[:1])
    (input_dir / "text.jpg").write_text("this is not an image")
    out = tmp_path / "out"
    for _ in range(3):
        run_quiet(config(input_dir, out, cascade_path))
    rows = [(r["source"], r["status"]) for r in jsonl(out / "sources.jsonl")]
    assert sorted(rows) == [(SUBSET[0], "ok"), ("text.jpg", "skipped")]
    # A skipped file is still retried: once it is fixed, its new outcome is recorded (the last row wins).
    (input_dir / "text.jpg").unlink()
    (input_dir / "text.jpg").symlink_to(shared_illustrations / SUBSET[1])
    summary = run_quiet(config(input_dir, out, cascade_path))
    assert summary.images_read == 1
    rows = [(r["source"], r["status"]) for r in jsonl(out / "sources.jsonl")]
    assert rows[-1] == ("text.jpg", "ok") and len(rows) == 3
    run_quiet(config(input_dir, out, cascade_path))
    assert len(jsonl(out / "sources.jsonl")) == 3


# ---------------------------------------------------------------------------
# The input is never written, a full disk loses nothing, one writer per --output (issue 49)


def test_a_preview_inside_input_or_onto_an_input_file_is_refused(tmp_path, cascade_path, shared_illustrations):
    input_dir = make_input(tmp_path / "in", SUBSET[:1])
    own = input_dir / "own.jpg"  # a file of the input itself, not a link
    own.write_bytes((shared_illustrations / SUBSET[1]).read_bytes())
    elsewhere = tmp_path / "elsewhere"  # an input file reached through a link
    elsewhere.mkdir()
    (elsewhere / "linked.jpg").write_bytes((shared_illustrations / SUBSET[2]).read_bytes())
    (input_dir / "linked.jpg").symlink_to(elsewhere / "linked.jpg")
    before, before_input = snapshot(tmp_path), snapshot(input_dir)
    out = tmp_path / "out"
    for target, says in ((own, "--preview_path .* is inside --input"), (input_dir / "new" / "sheet.png", "inside --input"),
                         (elsewhere / "linked.jpg", "is the input file linked.jpg")):
        with pytest.raises(crop_faces.CropFacesError, match=says):
            run_quiet(config(input_dir, out, cascade_path, preview=True, preview_path=str(target)))
    cli = _cli("--input", str(input_dir), "--output", str(out), "--cascade", cascade_path, "--preview",
               "--preview_path", str(own))
    assert cli.returncode != 0 and "inside --input" in cli.stderr and "Traceback" not in cli.stderr
    assert snapshot(tmp_path) == before and not out.exists()

    sheet = tmp_path / "sheet.png"  # outside the input: written
    run_quiet(config(input_dir, out, cascade_path, preview=True, preview_path=str(sheet)))
    assert cv2.imread(str(sheet)) is not None and snapshot(input_dir) == before_input


class _FillingDisk:
    """face_dataset's `open`, on a disk that fills after `budget` bytes: the write that crosses it
    writes what still fits and raises ENOSPC, as a full disk does. `writes` lists (file, bytes)."""

    def __init__(self, budget: float):
        self.left, self.writes = budget, []

    def __call__(self, path, mode="r", *args, **kwargs):
        f = open(path, mode, *args, **kwargs)
        return f if mode in ("r", "rb") else _DiskFile(f, self)


class _DiskFile:
    def __init__(self, f, disk):
        self.f, self.disk = f, disk

    def write(self, data):
        self.disk.writes.append((os.path.basename(self.f.name), len(data)))
        if len(data) > self.disk.left:
            self.f.write(data[: int(self.disk.left)])
            self.disk.left = 0
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), self.f.name)
        self.disk.left -= len(data)
        return self.f.write(data)

    def writelines(self, lines):
        for line in lines:
            self.write(line)

    def close(self):
        self.f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()


def _records(out: Path) -> dict:
    """The dataset as a comparable value: its three records (rows in canonical form) and face files."""
    rows = lambda name: sorted(json.dumps(r, sort_keys=True) for r in jsonl(out / name))  # noqa: E731
    faces = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in out.iterdir() if not p.name.startswith(".")
             and p.suffix == ".png"}
    return {"manifest": rows("manifest.jsonl"), "rejected": rows("rejected.jsonl"),
            "sources": rows("sources.jsonl"), "faces": faces}


@pytest.fixture(scope="module")
def room_to_spare(tmp_path_factory, cascade_path, shared_illustrations):
    """(input folder, the dataset a run with room makes of it, that run's writes in order)."""
    tmp = tmp_path_factory.mktemp("room")
    input_dir = make_input(tmp / "in", ["jlaoo_ahagon_umiko_19.jpg", "xavierjiezou_test_4.jpg"])
    clean = _FillingDisk(float("inf"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(face_dataset, "open", clean, raising=False)
        run_quiet(config(input_dir, tmp / "clean", cascade_path))
    reference = _records(tmp / "clean")
    assert len(reference["faces"]) == 7 and reference["rejected"] and len(reference["sources"]) == 2
    return input_dir, reference, clean.writes


@pytest.mark.parametrize("fails_at", ["face", "manifest.jsonl", "rejected.jsonl", "sources.jsonl", "last write"])
def test_a_full_disk_stops_with_one_line_and_the_same_command_resumes(tmp_path, monkeypatch, cascade_path,
                                                                        room_to_spare, fails_at):
    input_dir, reference, writes = room_to_spare

    # The disk fills halfway through the first write into the named file (or the run's last write).
    sizes = [size for _, size in writes]
    k = len(sizes) - 1 if fails_at == "last write" else next(
        i for i, (name, _) in enumerate(writes) if name == fails_at or (fails_at == "face" and name.endswith(".partial")))
    monkeypatch.setattr(face_dataset, "open", _FillingDisk(sum(sizes[:k]) + sizes[k] // 2), raising=False)
    out = tmp_path / "out"
    with pytest.raises(crop_faces.CropFacesError) as error:
        run_quiet(config(input_dir, out, cascade_path))
    message = str(error.value)
    assert "\n" not in message and "No space left on device" in message and "run the same command to resume" in message
    # What is on disk is consistent: only whole illustrations are recorded, every face file is in the manifest.
    stopped = _records(out)
    assert set(stopped["faces"]) == {json.loads(r)["file"] for r in stopped["manifest"]}
    assert set(stopped["manifest"]) <= set(reference["manifest"]) and set(stopped["sources"]) <= set(reference["sources"])
    recorded = {json.loads(r)["source"] for r in stopped["sources"]}
    assert {json.loads(r)["source"] for r in stopped["manifest"] + stopped["rejected"]} <= recorded
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == []  # no partial file, no lock

    monkeypatch.setattr(face_dataset, "open", open, raising=False)  # space is back
    resumed = run_quiet(config(input_dir, out, cascade_path))
    assert resumed.already_done == len(recorded)
    assert _records(out) == reference


def test_a_second_run_on_one_output_stops_with_one_line_naming_the_first(tmp_path, cascade_path, shared_illustrations,
                                                                          lock_holder):
    input_dir = make_input(tmp_path / "in", SUBSET[:2])
    out = tmp_path / "out"
    first = lock_holder(out)  # a run writing into --output
    with pytest.raises(folder_lock.FolderLocked, match=f"PID {first.pid}"):
        run_quiet(config(input_dir, out, cascade_path))
    cli = _cli("--input", str(input_dir), "--output", str(out), "--cascade", cascade_path)
    assert cli.returncode == 2 and cli.stderr.splitlines() == [cli.stderr.strip()]
    assert cli.stderr.startswith("error: ") and f"PID {first.pid}" in cli.stderr and "in use" in cli.stderr
    assert [p.name for p in out.iterdir()] == [folder_lock.LOCK_FILE]  # nothing written

    first.send_signal(signal.SIGKILL)  # the first run dies without releasing its lock
    first.wait()
    stderr = io.StringIO()
    summary = crop_faces.run(config(input_dir, out, cascade_path), stdout=io.StringIO(), stderr=stderr)
    assert f"taking over the lock of {out} left by holder PID {first.pid}" in stderr.getvalue()
    assert summary.faces_written == len(jsonl(out / "manifest.jsonl")) == len(list(out.glob("*.png"))) > 0
    assert not (out / folder_lock.LOCK_FILE).exists()


def test_an_earlier_output_inside_input_is_skipped_with_one_line(tmp_path, cascade_path, shared_illustrations):
    input_dir = make_input(tmp_path / "in", SUBSET[:2])
    first = run_quiet(config(input_dir, tmp_path / "faces", cascade_path))
    (tmp_path / "faces").rename(input_dir / "old_faces")  # e.g. moved there by hand
    stderr = io.StringIO()
    second = crop_faces.run(config(input_dir, tmp_path / "out", cascade_path), stdout=io.StringIO(), stderr=stderr)
    assert second.images_found == 2 and second.faces_detected == first.faces_detected
    assert second.faces_written == first.faces_written > 0
    lines = [line for line in stderr.getvalue().splitlines() if "old_faces" in line]
    assert len(lines) == 1 and lines[0].startswith("warning: skipping 1 folder") and "not cropped again" in lines[0]


DETECTOR_AND_CLEANING = {"scale_factor": 1.2, "min_neighbors": 4, "min_size": 30, "jpeg_quality": 80,
                         "shard_size": 7, "near_duplicate_distance": 3, "min_chroma": 5.0, "min_std": 4.0,
                         "detect_max_side": 1500}


def test_every_detector_cleaning_and_output_flag_reaches_the_run(tmp_path, cascade_path, shared_illustrations):
    """Each of these flags, parsed from a command line, sets its field of the run's Config (the tests
    above check what each field does), and a command line giving all of them runs; a detector
    flag changes what is found (--min_neighbors 1000: no face passes)."""
    from absl import flags

    defaults = crop_faces.Config("", "")
    assert all(getattr(defaults, name) != value for name, value in DETECTOR_AND_CLEANING.items())
    given = [f"--{name}={value}" for name, value in DETECTOR_AND_CLEANING.items()]
    input_dir = make_input(tmp_path / "in", ["jlaoo_ahagon_umiko_19.jpg"])
    fv = flags.FlagValues()
    crop_faces.define_flags(fv)
    fv(["crop_faces.py", f"--input={input_dir}", f"--output={tmp_path / 'out'}", *given])
    parsed = crop_faces.config_from_flags(fv)
    assert {name: getattr(parsed, name) for name in DETECTOR_AND_CLEANING} == DETECTOR_AND_CLEANING
    common = ["--input", str(input_dir), "--cascade", cascade_path, "--dry_run", "--workers", "1"]
    done = _cli(*common, "--output", str(tmp_path / "a"), *given)
    assert done.returncode == 0 and "would be written (dry run)" in done.stdout, done.stderr
    strict = _cli(*common, "--output", str(tmp_path / "b"), "--min_neighbors", "1000")
    assert strict.returncode == 0 and "0 faces would be written" in strict.stdout, strict.stdout

import hashlib
import io
import os
import struct
import zlib

import cv2
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from illustration_gan import UserError, data


def _png(array, mode=None):
    buffer = io.BytesIO()
    Image.fromarray(array, mode=mode).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture
def odd_folder(tmp_path):
    """Good images in every odd colour format, and files that are not images."""
    folder = tmp_path / "odd"
    (folder / "sub").mkdir(parents=True)
    (folder / "rgb.png").write_bytes(_png(np.full((40, 40, 3), (200, 10, 10), np.uint8)))
    (folder / "sub" / "gray.png").write_bytes(_png(np.full((30, 50), 90, np.uint8)))
    rgba = np.zeros((40, 40, 4), np.uint8)
    rgba[..., 2] = 255
    rgba[:, :20, 3] = 255  # left half opaque blue, right half transparent
    (folder / "rgba.png").write_bytes(_png(rgba))
    buffer = io.BytesIO()
    Image.new("CMYK", (40, 40), (0, 255, 255, 0)).save(buffer, "JPEG")  # red in CMYK
    (folder / "cmyk.jpg").write_bytes(buffer.getvalue())
    sixteen = tf.io.encode_png(np.full((20, 20, 3), 65535, np.uint16)).numpy()
    (folder / "sixteen.png").write_bytes(sixteen)
    (folder / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"garbage" * 20)
    (folder / "notes.png").write_text("this is a text file named .png")
    (folder / "readme.txt").write_text("ignored: not an image extension")
    return folder


def _digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_scan_skips_bad_files_by_name_and_keeps_odd_formats(odd_folder):
    before = _digest(odd_folder)
    source = data.scan(str(odd_folder))
    assert source.num_images == 5
    assert sorted(p.rsplit("/", 1)[1] for p in source.skipped) == ["corrupt.jpg", "notes.png"]
    assert _digest(odd_folder) == before  # the input folder is never modified


def test_decoder_handles_gray_alpha_cmyk_16bit(odd_folder):
    def decode(name):
        return data.decode_to_rgb(tf.io.read_file(str(odd_folder / name)), 8).numpy()

    assert decode("rgb.png").shape == (8, 8, 3)
    np.testing.assert_array_equal(decode("sub/gray.png")[0, 0], [90, 90, 90])
    rgba = decode("rgba.png")
    np.testing.assert_array_equal(rgba[4, 0], [0, 0, 255])  # opaque blue stays blue
    np.testing.assert_array_equal(rgba[4, 7], [255, 255, 255])  # transparent becomes white
    cmyk = decode("cmyk.jpg")[4, 4]
    assert cmyk[0] > 200 and cmyk[1] < 60 and cmyk[2] < 60  # red, not inverted
    np.testing.assert_array_equal(decode("sixteen.png")[0, 0], [255, 255, 255])


def test_non_square_images_are_centre_cropped():
    image = np.zeros((20, 40, 3), np.uint8)
    image[:, 10:30] = 255  # the central square is white
    out = data.decode_to_rgb(tf.io.encode_png(image), 10).numpy()
    assert out.min() == 255


def test_empty_and_unusable_folders_are_clear_errors(tmp_path):
    with pytest.raises(UserError, match="no images"):
        data.scan(str(tmp_path))
    (tmp_path / "bad.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(UserError, match="no usable image"):
        data.scan(str(tmp_path))
    with pytest.raises(UserError, match="does not exist"):
        data.scan(str(tmp_path / "missing"))


def test_training_batches_are_scaled_flipped_and_sized(odd_folder):
    source = data.scan(str(odd_folder))
    ds = data.training_dataset(source, image_size=16, batch_size=4, seed=0)
    batches = list(ds.take(50).as_numpy_iterator())  # the RGBA image comes ~40 times: both flips, but for 2^-39
    assert all(b.shape == (4, 16, 16, 3) and b.dtype == np.float32 for b in batches)
    values = np.concatenate(batches)
    assert values.min() >= -1.0 and values.max() <= 1.0
    rgba = [b for b in np.concatenate(batches) if b[8, 0, 2] > 0.9 and b[8, 0, 0] < -0.9 or b[8, 15, 2] > 0.9 and b[8, 15, 0] < -0.9]
    sides = {bool(b[8, 0, 0] < -0.9) for b in rgba}
    assert sides == {True, False}  # the half-blue image appears both ways round: random flips


def test_the_same_seed_gives_the_same_batches_and_another_seed_other_ones(odd_folder):
    source = data.scan(str(odd_folder))

    def take(seed):
        return np.concatenate(list(data.training_dataset(source, 16, 4, seed=seed).take(20).as_numpy_iterator()))

    first = take(0)
    assert np.array_equal(first, take(0))  # order and flips alike, however the parallel map is scheduled
    assert not np.array_equal(first, take(1))


def test_tfrecord_shards_read_like_folders(tmp_path, odd_folder):
    path = tmp_path / "faces-00000-of-00001.tfrecord"
    with tf.io.TFRecordWriter(str(path)) as writer:
        for name in ["rgb.png", "sub/gray.png", "corrupt.jpg"]:
            feature = {"image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(value=[(odd_folder / name).read_bytes()]))}
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
    source = data.scan(str(tmp_path))
    assert source.kind == "tfrecord" and source.num_images == 2 and len(source.skipped) == 1
    images = np.concatenate(list(data.image_batches_uint8(str(tmp_path), 8, 4)))
    assert images.shape == (2, 8, 8, 3)


def test_uint8_batches_follow_file_order(odd_folder):
    files = data.list_image_files(str(odd_folder))
    assert [f.rsplit("/", 1)[1] for f in files][:2] == ["cmyk.jpg", "corrupt.jpg"]
    batches = list(data.image_batches_uint8([str(odd_folder / "rgb.png"), str(odd_folder / "sub/gray.png")], 8, 1))
    assert batches[0][0, 0, 0].tolist() == [200, 10, 10] and batches[1][0, 0, 0].tolist() == [90, 90, 90]


# ---------------------------------------------------------------------------
# Hostile folders (issue 25, items 7-9)


def _three_faces(folder):
    folder.mkdir(parents=True, exist_ok=True)
    for i, colour in enumerate([(200, 10, 10), (10, 200, 10), (10, 10, 200)]):
        (folder / f"{i}.png").write_bytes(_png(np.full((16, 16, 3), colour, np.uint8)))
    return folder


def test_symlink_loops_and_repeated_links_are_followed_once(tmp_path):
    folder = _three_faces(tmp_path / "faces")
    (folder / "loop").symlink_to(".")  # loop -> .
    (folder / "again.png").symlink_to(folder / "0.png")  # the same file under a second name
    extra = _three_faces(tmp_path / "elsewhere")
    (folder / "extra").symlink_to(extra)  # a link to another real folder is followed (once)
    source = data.scan(str(folder))
    assert source.num_images == 6
    assert len(set(source.files)) == 6
    assert source.skipped_counts == {"repeated_link": 2}
    assert sorted(p.rsplit("/", 1)[1] for p in source.skipped) == ["again.png", "loop"]


def test_non_utf8_file_names_are_skipped_with_a_warning(tmp_path, caplog):
    folder = _three_faces(tmp_path / "faces")
    bad = os.path.join(os.fsencode(folder), b"caf\xe9.png")
    with open(bad, "wb") as f:
        f.write(_png(np.zeros((16, 16, 3), np.uint8)))
    with caplog.at_level("WARNING"):
        source = data.scan(str(folder))
    assert source.num_images == 3
    assert source.skipped_counts == {"non_utf8_name": 1}
    assert "caf\\xe9.png" in caplog.text  # named, escaped


def _big_png(width, height):
    """A valid PNG of a flat image: tiny on disk, width x height pixels decoded."""
    return cv2.imencode(".png", np.zeros((height, width), np.uint8))[1].tobytes()


def _png_header_only(width, height):
    """A PNG whose header (with a correct CRC) claims width x height: a bomb's first bytes."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    data_ = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk + struct.pack(">I", zlib.crc32(chunk))
    idat = b"IDAT" + zlib.compress(b"\x00" * 64)
    return data_ + struct.pack(">I", len(idat) - 4) + idat + struct.pack(">I", zlib.crc32(idat))


def test_images_over_max_megapixels_are_skipped_before_decoding(tmp_path, caplog):
    folder = _three_faces(tmp_path / "faces")
    (folder / "large.png").write_bytes(_big_png(1500, 1000))  # 1.5 megapixels
    (folder / "bomb.png").write_bytes(_png_header_only(100_000, 100_000))  # 10 gigapixels if decoded
    with caplog.at_level("WARNING"):
        source = data.scan(str(folder), max_megapixels=1.0)
    assert source.num_images == 3
    assert source.skipped_counts == {"too_large": 2}
    assert sorted(p.rsplit("/", 1)[1] for p in source.skipped) == ["bomb.png", "large.png"]
    assert "large.png" in caplog.text and "1500x1000" in caplog.text
    # The default cap is the cropper's, one shared constant: 1.5 MP passes, the bomb does not.
    from data_tools import face_cropping

    assert face_cropping.CropSettings(cascade_path="").max_pixels == int(data.MAX_MEGAPIXELS * 1e6)
    default = data.scan(str(folder))
    assert default.num_images == 4 and default.skipped_counts == {"too_large": 1}


def test_tfrecords_over_max_megapixels_are_skipped_before_decoding(tmp_path):
    path = tmp_path / "faces-00000-of-00001.tfrecord"
    with tf.io.TFRecordWriter(str(path)) as writer:
        for encoded in [_png(np.zeros((16, 16, 3), np.uint8)), _png_header_only(100_000, 100_000), _big_png(1500, 1000)]:
            feature = {"image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(value=[encoded]))}
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
    source = data.scan(str(tmp_path), max_megapixels=1.0)
    assert source.num_images == 1 and source.skipped == ("record 1", "record 2")
    assert source.skipped_counts == {"too_large": 2}
    batches = list(data.training_dataset(source, 8, 2, seed=0, cache=False).take(2).as_numpy_iterator())
    assert all(b.shape == (2, 8, 8, 3) for b in batches)


# ----------------------------------------------------------------------------- issue 49: damage after or during the scan


def _shard(path, values):
    with tf.io.TFRecordWriter(str(path)) as writer:
        for value in values:
            feature = {"image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(
                value=[_png(np.full((16, 16, 3), value, np.uint8))]))}
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())


def test_a_torn_or_random_tfrecord_shard_is_skipped_and_counted(tmp_path, caplog):
    """Item 12: the scan died on the DataLossError of one bad shard."""
    folder = tmp_path / "shards"
    folder.mkdir()
    _shard(folder / "a.tfrecord", [10, 20, 30])
    _shard(folder / "b.tfrecord", [40, 50])
    torn = folder / "b.tfrecord"
    torn.write_bytes(torn.read_bytes()[:-30])
    (folder / "c.tfrecord").write_bytes(np.random.default_rng(0).bytes(3000))
    source = data.scan(str(folder))
    assert source.num_images == 3 and source.files == (str(folder / "a.tfrecord"),)
    assert source.skipped_counts == {"damaged_shard": 2} and len(source.skipped) == 2
    assert "b.tfrecord: not a readable TFRecord shard (DataLossError: truncated record" in caplog.text
    assert "c.tfrecord: not a readable TFRecord shard" in caplog.text
    values = np.concatenate(list(data.training_dataset(source, 8, 3, seed=0, cache=False).take(2).as_numpy_iterator()))
    assert sorted({round(float(v), 2) for v in values[:, 0, 0, 0]}) == [round(v / 127.5 - 1, 2) for v in (10, 20, 30)]
    for shard in ("a", "b"):
        (folder / f"{shard}.tfrecord").write_bytes(b"")
    with pytest.raises(UserError, match="no usable image"):
        data.scan(str(folder / "c.tfrecord"))


def test_images_deleted_or_replaced_after_the_scan_are_skipped_and_counted(tmp_path, caplog):
    """Item 13: a file deleted after the scan was a NotFoundError in the middle of an epoch."""
    folder = tmp_path / "faces"
    folder.mkdir()
    for i in range(10):
        cv2.imwrite(str(folder / f"{i}.png"), np.full((16, 16, 3), 20 * i, np.uint8))
    source = data.scan(str(folder))
    (folder / "3.png").unlink()
    (folder / "9.png").unlink()  # the last: no image after it shows the gap
    (folder / "5.png").write_text("replaced by text")
    batches = data.training_dataset(source, 8, 7, seed=0)
    first = np.concatenate(list(batches.take(3).as_numpy_iterator()))  # 21 images: the 7 left, three times
    assert sorted({round((float(v) + 1) * 127.5) for v in first[:, 0, 0, 0]}) == [0, 20, 40, 80, 120, 140, 160]
    for name in ("3.png", "5.png", "9.png"):
        assert f"skipping {folder / name}: it no longer reads as an image" in caplog.text
    assert "3 skipped so far" in caplog.text and caplog.text.count("no longer reads") == 3
    images = np.concatenate(list(data.image_batches_uint8(source.files, 8, 4)))
    assert len(images) == 7

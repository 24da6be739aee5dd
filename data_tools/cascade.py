"""Where the lbpcascade_animeface detector comes from.

`--cascade PATH` uses a local file as is. Otherwise the cascade is taken from
the Keras cache, `$KERAS_HOME/models/lbpcascade_animeface.xml` (KERAS_HOME
defaults to `~/.keras`; Keras falls back to `/tmp/.keras` when that is not
writable), and downloaded there on first use from nagadomi's repository with
`keras.utils.get_file`, which checks the pinned sha256. Keras (and so
TensorFlow) is imported only when a download is actually needed; if Keras is
not installed a small urllib download with the same hash check is used.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.request

CASCADE_URL = "https://raw.githubusercontent.com/nagadomi/lbpcascade_animeface/master/lbpcascade_animeface.xml"
CASCADE_SHA256 = "9376d30ac38db6bda2a68b88b3b76bbd7e6aa33af47f7f5c76bc88ca75f1ce30"
CASCADE_NAME = "lbpcascade_animeface.xml"
CACHE_SUBDIR = "models"


class CascadeUnavailable(Exception):
    """The detector file could not be found or downloaded; the message says what to do."""


def sha256_of(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def keras_cache_dir() -> str:
    """The Keras cache folder: $KERAS_HOME or ~/.keras, else /tmp/.keras if not writable."""
    base = os.path.expanduser(os.environ.get("KERAS_HOME") or os.path.join("~", ".keras"))
    try:
        os.makedirs(base, exist_ok=True)
    except OSError:
        pass
    if os.access(base, os.W_OK):
        return base
    return os.path.join("/tmp" if os.path.isdir("/tmp") else tempfile.gettempdir(), ".keras")


def cached_cascade_path() -> str:
    return os.path.join(keras_cache_dir(), CACHE_SUBDIR, CASCADE_NAME)


def resolve_cascade(path: str = "", url: str = CASCADE_URL, sha256: str = CASCADE_SHA256) -> str:
    """The path of a usable cascade file: `path` if given, else cached or downloaded."""
    if path:
        if not os.path.isfile(path):
            raise CascadeUnavailable(f"--cascade {path}: no such file")
        return path
    cached = cached_cascade_path()
    if os.path.isfile(cached) and sha256_of(cached) == sha256:
        return cached
    try:
        return _download(url, sha256)
    except Exception as e:  # network, proxy, hash mismatch, read-only cache...
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0].split(" -- ")[-1]
        raise CascadeUnavailable(
            f"cannot download the anime face detector ({reason}). Get {CASCADE_NAME} from {CASCADE_URL} "
            f"(sha256 {sha256}) and pass --cascade /path/to/{CASCADE_NAME}, or put it at {cached}"
        ) from None


def _download(url: str, sha256: str) -> str:
    cache_dir = keras_cache_dir()
    target = os.path.join(cache_dir, CACHE_SUBDIR, CASCADE_NAME)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keras imports TensorFlow: keep it quiet
    try:
        from keras.utils import get_file  # only when downloading
    except ImportError:
        get_file = None
    if get_file is not None:
        try:
            return get_file(
                fname=CASCADE_NAME, origin=url, file_hash=sha256, hash_algorithm="sha256",
                cache_subdir=CACHE_SUBDIR, cache_dir=cache_dir,
            )
        except ValueError:  # hash mismatch after download: do not leave the bad file
            if os.path.exists(target) and sha256_of(target) != sha256:
                os.remove(target)
            raise
    os.makedirs(os.path.dirname(target), exist_ok=True)
    partial = target + ".partial"
    with urllib.request.urlopen(url, timeout=60) as response, open(partial, "wb") as f:
        f.write(response.read())
    if sha256_of(partial) != sha256:
        os.remove(partial)
        raise ValueError(f"downloaded file has the wrong sha256 (expected {sha256})")
    os.replace(partial, target)
    return target

"""Mode coverage on the built-in toy faces: how many attribute combinations a generator produces.

The protocol is the stacked-MNIST one of the mode-collapse literature (Metz et al.
2017, "Unrolled Generative Adversarial Networks"; Srivastava et al. 2017, "VEEGAN"):
a classifier trained on the real data labels every generated sample with its mode,
and two numbers summarise the result,

- **modes covered**: how many of the modes received at least one sample, and
- **KL**: KL(p_generated || p_true) between the generated mode distribution and the
  true one, in nats.

Here the modes are the 48 attribute combinations of `toy_faces` (6 hair colours x
4 eye colours x 2 hair styles), drawn in equal shares, so p_true is uniform and a
generator collapsed onto one combination scores 1/48 coverage and KL = log 48 = 3.87.
The classifier is a small CNN with one softmax head per attribute, trained on
freshly drawn toy faces (another seed than the training set's 0) at the
generator's resolution; `load_or_train_classifier` caches it under
~/.cache/illustration_gan/.

As in stacked MNIST, every sample gets a mode, also a sample no human would call a
face; `mean_confidence` (the mean over samples of the product of the three heads'
top probabilities) shows when the classifier is guessing, which is what it does on
the noise of an untrained generator, whose "coverage" can then look high.
"""

from __future__ import annotations

import json
import math
import os
import time

import cv2
import keras
import numpy as np

from illustration_gan import toy_faces

CLASSIFIER_VERSION = 1  # bump when the architecture or the training recipe changes (invalidates caches)
CLASSIFIER_SEED = 1001  # training faces; the training set of train.py uses seed 0
HELDOUT_SEED = 2002  # held-out faces for the accuracy check
HEADS = ("hair", "eyes", "style")
SIZES = tuple(len(toy_faces.ATTRIBUTES[h]) for h in HEADS)  # (6, 4, 2)
NUM_COMBINATIONS = int(np.prod(SIZES))  # 48
KL_EPSILON = 1e-12
STRICT_SHARE = 0.1  # a mode counts as "well covered" with >= 10% of its expected sample count
_WORK_SIZE = 32  # larger inputs are averaged down to this inside the classifier
_CHUNK = 960  # faces drawn per toy_faces.generate call (a multiple of 48: balanced chunks)


# --- combinations -------------------------------------------------------------------------------


def combination_index(hair: str | int, eyes: str | int, style: str | int) -> int:
    """Index in [0, 48) of an attribute triple (names or per-attribute indices).

    Ordered as `toy_faces.generate` enumerates them: hair major, then eyes, then style.
    """
    parts = []
    for head, value in zip(HEADS, (hair, eyes, style)):
        parts.append(toy_faces.ATTRIBUTES[head].index(value) if isinstance(value, str) else int(value))
    return int(np.ravel_multi_index(parts, SIZES))


def combination_attributes(index: int) -> dict:
    """{"hair": ..., "eyes": ..., "style": ...} of a combination index."""
    parts = np.unravel_index(int(index), SIZES)
    return {head: toy_faces.ATTRIBUTES[head][int(i)] for head, i in zip(HEADS, parts)}


def combination_name(index: int) -> str:
    """E.g. "pink hair, green eyes, long"."""
    a = combination_attributes(index)
    return f"{a['hair']} hair, {a['eyes']} eyes, {a['style']}"


def label_indices(labels: list[dict]) -> np.ndarray:
    """Attribute dicts of `toy_faces.generate` -> (N, 3) int per-attribute indices."""
    return np.array([[toy_faces.ATTRIBUTES[h].index(label[h]) for h in HEADS] for label in labels], np.int64)


def combination_indices_of(labels: list[dict]) -> np.ndarray:
    """Attribute dicts -> (N,) combination indices."""
    parts = label_indices(labels)
    if not len(parts):
        return np.zeros((0,), np.int64)
    return np.ravel_multi_index(parts.T, SIZES).astype(np.int64)


# --- data ---------------------------------------------------------------------------------------


def resize(images_uint8: np.ndarray, image_size: int) -> np.ndarray:
    """Area-resize RGB uint8 images to `image_size` (as the trainer's decoder does)."""
    if images_uint8.shape[1] == image_size and images_uint8.shape[2] == image_size:
        return images_uint8
    out = np.empty((len(images_uint8), image_size, image_size, 3), np.uint8)
    for i, image in enumerate(images_uint8):
        out[i] = cv2.resize(image, (image_size, image_size), interpolation=cv2.INTER_AREA)
    return out


def toy_data(count: int, image_size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`count` toy faces at `image_size` and their (count, 3) attribute indices.

    Drawn in chunks (each balanced over the 48 combinations) so that 128x128 faces are
    never all held at full size at once.
    """
    images, parts = [], []
    for chunk, start in enumerate(range(0, count, _CHUNK)):
        n = min(_CHUNK, count - start)
        faces, labels = toy_faces.generate(n, seed=seed * 100_003 + chunk)
        images.append(resize(faces, image_size))
        parts.append(label_indices(labels))
    if not images:
        return np.zeros((0, image_size, image_size, 3), np.uint8), np.zeros((0, 3), np.int64)
    return np.concatenate(images), np.concatenate(parts)


# --- classifier ---------------------------------------------------------------------------------


def build_classifier(image_size: int) -> keras.Model:
    """A small CNN on uint8-valued RGB input (scaled inside), one softmax head per attribute.

    Larger inputs are first area-averaged to 32x32 (every attribute is plain at 32x32,
    and it keeps training under half a minute at any size). Then per level a 3x3 conv
    + ReLU and a 2x2 max pool, down to 4x4, and one FC layer. Horizontal flips (the
    trainer flips its data) and slight Gaussian noise act in training only; the noise
    makes the heads less brittle on imperfect generated faces.
    """
    if image_size < 8 or image_size & (image_size - 1):
        raise ValueError(f"image_size must be a power of two >= 8, got {image_size}")
    inputs = keras.Input((image_size, image_size, 3), name="image")
    x = keras.layers.Rescaling(1 / 127.5, offset=-1.0)(inputs)
    if image_size > _WORK_SIZE:
        x = keras.layers.AveragePooling2D(image_size // _WORK_SIZE)(x)
    x = keras.layers.RandomFlip("horizontal")(x)
    x = keras.layers.GaussianNoise(0.05)(x)
    levels = int(math.log2(min(image_size, _WORK_SIZE))) - 2
    for level in range(levels):
        x = keras.layers.Conv2D(min(16 * 2**level, 64), 3, padding="same", activation="relu")(x)
        x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(128, activation="relu")(x)
    outputs = {head: keras.layers.Dense(size, activation="softmax", name=head)(x) for head, size in zip(HEADS, SIZES)}
    return keras.Model(inputs, outputs, name=f"toy_attribute_classifier_{image_size}")


def train_attribute_classifier(
    image_size: int,
    train_count: int = 6000,
    seed: int = CLASSIFIER_SEED,
    epochs: int = 4,
    batch_size: int = 64,
    verbose: int = 0,
) -> keras.Model:
    """Trains `build_classifier` on `train_count` fresh toy faces drawn with `seed`.

    About 20 s at 32x32 with 6000 faces on two busy CPU cores.
    """
    keras.utils.set_random_seed(seed)
    images, parts = toy_data(train_count, image_size, seed)
    model = build_classifier(image_size)
    model.compile(
        optimizer=keras.optimizers.Adam(2e-3),
        loss={head: "sparse_categorical_crossentropy" for head in HEADS},
    )
    targets = {head: parts[:, i] for i, head in enumerate(HEADS)}
    model.fit(images.astype(np.float32), targets, batch_size=batch_size, epochs=epochs, shuffle=True, verbose=verbose)
    return model


def classifier_path(image_size: int, cache_dir: str | None = None) -> str:
    name = f"toy_attribute_classifier-v{toy_faces.VERSION}-c{CLASSIFIER_VERSION}-{image_size}px.keras"
    return os.path.join(cache_dir or toy_faces.default_root(), name)


def load_or_train_classifier(image_size: int, cache_dir: str | None = None, verbose: bool = False) -> keras.Model:
    """The cached classifier for `image_size`, trained (and cached, with its held-out accuracy) if missing.

    The file name holds `toy_faces.VERSION`, `CLASSIFIER_VERSION` and the size, so a
    change in the drawing or the recipe trains a new one. `<file>.json` beside it
    records the held-out accuracy measured when it was trained.
    """
    path = classifier_path(image_size, cache_dir)
    if os.path.exists(path):
        return keras.saving.load_model(path, compile=False)
    start = time.time()
    if verbose:
        print(f"training the toy-face attribute classifier at {image_size}x{image_size} (cached at {path})", flush=True)
    model = train_attribute_classifier(image_size)
    record = {
        "image_size": image_size,
        "toy_faces_version": toy_faces.VERSION,
        "classifier_version": CLASSIFIER_VERSION,
        "train_seconds": round(time.time() - start, 1),
        "heldout_accuracy": heldout_accuracy(model, image_size),
    }
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path[: -len(".keras")] + f".tmp{os.getpid()}.keras"
    model.save(tmp)
    os.replace(tmp, path)  # atomic: concurrent evaluations never read half a file
    with open(path + ".json", "w") as f:
        json.dump(record, f, indent=2)
    if verbose:
        print(f"  done in {record['train_seconds']} s; held-out accuracy {record['heldout_accuracy']}", flush=True)
    return model


def classifier_record(image_size: int, cache_dir: str | None = None) -> dict:
    """What `load_or_train_classifier` recorded about the cached classifier ({} if unknown)."""
    try:
        with open(classifier_path(image_size, cache_dir) + ".json") as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def predict_attributes(model: keras.Model, images_uint8: np.ndarray, batch_size: int = 256) -> dict:
    """{"hair": (N, 6), "eyes": (N, 4), "style": (N, 2)} probabilities of RGB uint8 images."""
    images = np.asarray(images_uint8)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"expected (N, H, W, 3) RGB images, got shape {images.shape}")
    size = model.input_shape[1]
    if images.shape[1] != size or images.shape[2] != size:
        raise ValueError(f"the classifier takes {size}x{size} images, got {images.shape[1]}x{images.shape[2]}")
    if not len(images):
        return {head: np.zeros((0, n), np.float32) for head, n in zip(HEADS, SIZES)}
    out = model.predict(images.astype(np.float32), batch_size=batch_size, verbose=0)
    return {head: np.asarray(out[head]) for head in HEADS}


def classify(model: keras.Model, images_uint8: np.ndarray, return_confidence: bool = False):
    """(N,) combination indices in [0, 48) of RGB uint8 images at the classifier's size.

    With `return_confidence`, also (N,) product of the three heads' top probabilities.
    """
    probs = predict_attributes(model, images_uint8)
    parts = np.stack([probs[head].argmax(axis=1) for head in HEADS])
    indices = np.ravel_multi_index(parts, SIZES).astype(np.int64) if parts.shape[1] else np.zeros((0,), np.int64)
    if not return_confidence:
        return indices
    confidence = np.prod(np.stack([probs[head].max(axis=1) for head in HEADS]), axis=0)
    return indices, confidence


def heldout_accuracy(model: keras.Model, image_size: int, count: int = 960, seed: int = HELDOUT_SEED) -> dict:
    """Accuracy per head and of the whole combination on `count` fresh toy faces."""
    images, parts = toy_data(count, image_size, seed)
    probs = predict_attributes(model, images)
    predicted = np.stack([probs[head].argmax(axis=1) for head in HEADS], axis=1)
    result = {head: float(np.mean(predicted[:, i] == parts[:, i])) for i, head in enumerate(HEADS)}
    result["combination"] = float(np.mean(np.all(predicted == parts, axis=1)))
    return result


# --- scores -------------------------------------------------------------------------------------


def kl_to_uniform(counts: np.ndarray, epsilon: float = KL_EPSILON) -> float:
    """KL(p || uniform) in nats of the histogram `counts`.

    p is smoothed, p = (counts/N + epsilon) / (1 + K epsilon), so that empty modes give
    a finite log. In this direction (generated || true) empty modes contribute nothing
    anyway (0 log 0 = 0; the reverse KL(uniform || p) would be infinite), so the
    smoothing only guards the logarithm: it changes the value by at most
    K eps |log(K eps)|, under 2e-9 for K = 48. One occupied mode of K gives log K.
    """
    counts = np.asarray(counts, np.float64)
    k = len(counts)
    total = counts.sum()
    if total <= 0:
        return float("nan")
    p = (counts / total + epsilon) / (1.0 + k * epsilon)
    return float(max(0.0, np.sum(p * np.log(p * k))))


def coverage_scores(combination_indices, num_combinations: int = NUM_COMBINATIONS) -> dict:
    """Mode-coverage scores of classified samples (stacked-MNIST protocol).

    - `modes_covered`: combinations with at least one sample; `coverage` = that / K.
    - `modes_covered_strict`: combinations with at least 10% of their expected count
      (N/K), so a handful of stray samples does not count as covering a mode;
      `coverage_strict` = that / K.
    - `kl_to_uniform`: KL(p_generated || uniform) in nats (0 = every mode equally
      often; log K = all samples in one mode); see `kl_to_uniform` for the smoothing.
    - `kl_hair`, `kl_eyes`, `kl_style`: the same for each attribute's marginal
      (only when K is the 48 toy-face combinations).
    - `share_hair`, `share_eyes`, `share_style`: each value's share of the samples over its
      expected share, by value name (1 = as often as in the toy faces, 0 = never drawn), and
      `rarest_value`: the attribute value with the lowest of these, as "hair=black 0.41".
    - `counts`: samples per combination; `top_share`: the largest mode's share.
    """
    idx = np.asarray(combination_indices, np.int64).ravel()
    if idx.size and (idx.min() < 0 or idx.max() >= num_combinations):
        raise ValueError(f"combination indices must be in [0, {num_combinations})")
    counts = np.bincount(idx, minlength=num_combinations)
    n = int(idx.size)
    expected = n / num_combinations
    covered = int(np.sum(counts > 0))
    strict = int(np.sum(counts >= STRICT_SHARE * expected)) if n else 0
    scores = {
        "num_samples": n,
        "num_combinations": num_combinations,
        "modes_covered": covered,
        "coverage": covered / num_combinations,
        "modes_covered_strict": strict,
        "coverage_strict": strict / num_combinations,
        "kl_to_uniform": kl_to_uniform(counts),
        "top_share": float(counts.max() / n) if n else float("nan"),
    }
    if num_combinations == NUM_COMBINATIONS:
        per_combo = counts.reshape(SIZES)
        rarest = (float("inf"), "")
        for axis, head in enumerate(HEADS):
            other = tuple(a for a in range(3) if a != axis)
            marginal = per_combo.sum(axis=other)
            scores[f"kl_{head}"] = kl_to_uniform(marginal)
            ratios = marginal * len(marginal) / n if n else np.zeros(len(marginal))
            scores[f"share_{head}"] = {name: float(r) for name, r in zip(toy_faces.ATTRIBUTES[head], ratios)}
            low = int(np.argmin(ratios))
            rarest = min(rarest, (float(ratios[low]), f"{head}={toy_faces.ATTRIBUTES[head][low]}"))
        scores["rarest_value"] = f"{rarest[1]} {rarest[0]:.2f}"
    scores["counts"] = counts.tolist()
    return scores


def evaluate_coverage(sampler, num_samples: int = 4800, seed: int = 0, classifier: keras.Model | None = None,
                      cache_dir: str | None = None) -> dict:
    """Coverage scores of `num_samples` faces of `sampler` (`.image_size`, `.sample_uint8(n, seed)`).

    Uses `classifier`, else the cached (or newly trained) one for the sampler's size.
    4800 samples are 100 per combination: a perfect generator leaves no mode empty
    (chance < 1e-40) and its KL from sampling noise alone is about 47/(2*4800) = 0.005.
    """
    image_size = int(sampler.image_size)
    if classifier is None:
        classifier = load_or_train_classifier(image_size, cache_dir)
    images = sampler.sample_uint8(num_samples, seed)
    indices, confidence = classify(classifier, images, return_confidence=True)
    return {
        **coverage_scores(indices),
        "mean_confidence": float(confidence.mean()) if len(confidence) else float("nan"),
        "image_size": image_size,
        "seed": seed,
    }

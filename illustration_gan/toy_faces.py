"""The built-in dataset: procedural cartoon faces with known attributes.

`python train.py --TYPE train` with no `--path` trains on these, so a newcomer
sees a GAN learn within minutes on a CPU. Each face is drawn with OpenCV from
three discrete attributes (hair colour, eye colour, hair style: 48 combinations
in equal shares) plus small continuous jitter (position, size, skin tone).
Because the attributes are known, the mode coverage of a generator can be
measured on them (the stacked-MNIST protocol of the mode-collapse literature).
"""

from __future__ import annotations

import json
import os

import cv2
import numpy as np

VERSION = 1
DRAW_SIZE = 128

# BGR colours (OpenCV order).
HAIR_COLORS = {
    "black": (40, 30, 30),
    "brown": (30, 70, 130),
    "blonde": (90, 210, 240),
    "pink": (180, 120, 250),
    "blue": (220, 120, 40),
    "silver": (200, 200, 200),
}
EYE_COLORS = {
    "red": (40, 40, 210),
    "green": (60, 170, 40),
    "blue": (210, 110, 30),
    "purple": (170, 50, 140),
}
HAIR_STYLES = ("short", "long")
ATTRIBUTES = {"hair": list(HAIR_COLORS), "eyes": list(EYE_COLORS), "style": list(HAIR_STYLES)}
NUM_COMBINATIONS = len(HAIR_COLORS) * len(EYE_COLORS) * len(HAIR_STYLES)


def draw_face(hair: str, eyes: str, style: str, rng: np.random.Generator) -> np.ndarray:
    """One 128x128 BGR face."""
    s = DRAW_SIZE
    background = np.array([235, 235, 235]) + rng.integers(-15, 16, size=3)
    img = np.empty((s, s, 3), np.uint8)
    img[:] = np.clip(background, 0, 255)
    cx = s // 2 + int(rng.integers(-6, 7))
    cy = s // 2 + 6 + int(rng.integers(-5, 6))
    rx = int(rng.integers(33, 39))
    ry = int(rx * rng.uniform(1.08, 1.2))
    hair_bgr = tuple(int(c) for c in np.clip(np.array(HAIR_COLORS[hair]) + rng.integers(-12, 13, 3), 0, 255))
    skin = tuple(int(c) for c in np.clip(np.array([185, 215, 250]) + rng.integers(-12, 8, 3), 0, 255))
    if style == "long":  # hair falling behind the face down to the bottom
        cv2.rectangle(img, (cx - rx - 10, cy - 10), (cx + rx + 10, s), hair_bgr, -1)
    cv2.ellipse(img, (cx, cy - ry // 3), (rx + 8, ry), 0, 180, 360, hair_bgr, -1)  # crown
    cv2.ellipse(img, (cx, cy), (rx, ry), 0, 0, 360, skin, -1)  # face
    cv2.ellipse(img, (cx, cy - ry // 2), (rx + 2, ry // 2), 0, 180, 360, hair_bgr, -1)  # fringe
    eye_y = cy + ry // 6
    eye_dx = rx // 2
    eye_bgr = EYE_COLORS[eyes]
    for side in (-1, 1):
        ex = cx + side * eye_dx
        cv2.ellipse(img, (ex, eye_y), (9, 12), 0, 0, 360, (255, 255, 255), -1)
        cv2.ellipse(img, (ex, eye_y + 1), (7, 10), 0, 0, 360, eye_bgr, -1)
        cv2.circle(img, (ex, eye_y + 2), 3, (20, 20, 20), -1)
        cv2.circle(img, (ex - 3, eye_y - 4), 2, (255, 255, 255), -1)  # highlight
        cv2.line(img, (ex - 10, eye_y - 13), (ex + 10, eye_y - 13), (40, 40, 40), 2)  # lash line
    mouth_y = cy + int(ry * 0.62)
    cv2.ellipse(img, (cx, mouth_y), (6, 3), 0, 0, 180, (80, 80, 190), 2)
    return cv2.GaussianBlur(img, (3, 3), 0)


def generate(count: int, seed: int = 0) -> tuple[np.ndarray, list[dict]]:
    """`count` faces (RGB uint8, 128x128) with attributes cycling evenly over all combinations."""
    rng = np.random.default_rng(seed)
    combos = [(h, e, st) for h in HAIR_COLORS for e in EYE_COLORS for st in HAIR_STYLES]
    order = rng.permutation(np.arange(count) % len(combos))
    images = np.empty((count, DRAW_SIZE, DRAW_SIZE, 3), np.uint8)
    labels = []
    for i, c in enumerate(order):
        hair, eyes, style = combos[c]
        images[i] = draw_face(hair, eyes, style, rng)[..., ::-1]
        labels.append({"hair": hair, "eyes": eyes, "style": style})
    return images, labels


def default_root() -> str:
    from illustration_gan import cache_root

    return cache_root()


def ensure_dataset(count: int = 4096, seed: int = 0, root: str | None = None) -> str:
    """Writes the toy faces as PNGs (once) and returns their folder.

    The folder also holds `attributes.jsonl` (file name and attributes per face).
    """
    folder = os.path.join(root or default_root(), f"toy_faces-v{VERSION}-n{count}-s{seed}")
    done_marker = os.path.join(folder, "attributes.jsonl")
    if os.path.exists(done_marker):
        return folder
    os.makedirs(folder, exist_ok=True)
    images, labels = generate(count, seed)
    partial = done_marker + ".partial"
    with open(partial, "w") as f:
        for i, (image, label) in enumerate(zip(images, labels)):
            name = f"{i:05d}.png"
            cv2.imwrite(os.path.join(folder, name), image[..., ::-1])
            f.write(json.dumps({"file": name, **label}) + "\n")
    os.replace(partial, done_marker)  # written last: a half-written folder is redone
    return folder

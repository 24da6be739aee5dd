"""The contact sheet written by `--preview`, for a person to check a run.

Top: a few illustrations with their detections. Green square: the crop of a
kept face; red square: a dropped face, labelled with the reason; thin white
box: the raw detection. Below: a sample of kept crops, then a sample of
dropped crops labelled with their reason.
"""

from __future__ import annotations

import dataclasses
import random

import cv2
import numpy as np

GREEN, RED, WHITE, BG = (60, 200, 60), (40, 40, 230), (255, 255, 255), (38, 38, 38)
FONT = cv2.FONT_HERSHEY_SIMPLEX


@dataclasses.dataclass
class Illustration:
    title: str
    thumbnail: np.ndarray  # BGR
    scale: float  # thumbnail pixels per source pixel
    faces: list[tuple[tuple, tuple, str | None]]  # (detected box, square box, drop reason or None)


class Sample:
    """Reservoir sample of k items, deterministic for a given seed."""

    def __init__(self, k: int, seed: int = 0):
        self.k, self.items, self.seen, self._rng = k, [], 0, random.Random(seed)

    def offer(self, item) -> None:
        self.seen += 1
        if len(self.items) < self.k:
            self.items.append(item)
        else:
            j = self._rng.randrange(self.seen)
            if j < self.k:
                self.items[j] = item


def _label(image: np.ndarray, text: str, origin: tuple[int, int], color=WHITE, scale=0.4) -> None:
    cv2.putText(image, text, origin, FONT, scale, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(image, text, origin, FONT, scale, color, 1, cv2.LINE_AA)


def _draw(illustration: Illustration, height: int) -> np.ndarray:
    image = illustration.thumbnail.copy()
    f = height / image.shape[0]
    image = cv2.resize(image, (max(1, round(image.shape[1] * f)), height), interpolation=cv2.INTER_AREA)
    s = illustration.scale * f
    for detected, square, reason in illustration.faces:
        x, y, w, h = (round(v * s) for v in detected)
        cv2.rectangle(image, (x, y), (x + w, y + h), WHITE, 1)
        x, y, w, h = (round(v * s) for v in square)
        color = GREEN if reason is None else RED
        cv2.rectangle(image, (x, y), (x + w - 1, y + h - 1), color, 2)
        if reason:
            _label(image, reason, (x + 3, y + 14), RED)
    kept = sum(reason is None for _, _, reason in illustration.faces)
    _label(image, f"{illustration.title[:40]}  {kept}/{len(illustration.faces)} kept", (4, height - 6))
    return image


def _rows(tiles: list[np.ndarray], width: int, gap: int = 4) -> list[np.ndarray]:
    rows, row, used = [], [], 0
    for tile in tiles:
        if row and used + tile.shape[1] > width:
            rows.append(row)
            row, used = [], 0
        row.append(tile)
        used += tile.shape[1] + gap
    if row:
        rows.append(row)
    out = []
    for row in rows:
        height = max(t.shape[0] for t in row)
        canvas = np.full((height + gap, width, 3), BG, np.uint8)
        x = 0
        for tile in row:
            canvas[:tile.shape[0], x:x + tile.shape[1]] = tile[:, : width - x]
            x += tile.shape[1] + gap
        out.append(canvas)
    return out


def _heading(text: str, width: int) -> np.ndarray:
    bar = np.full((26, width, 3), BG, np.uint8)
    _label(bar, text, (6, 18), WHITE, 0.5)
    return bar


def contact_sheet(illustrations: list[Illustration], kept: Sample, dropped: Sample,
                  width: int = 1400, illustration_height: int = 320, tile: int = 96) -> np.ndarray:
    """kept.items: BGR crops; dropped.items: (BGR crop, reason)."""
    parts = [_heading(f"detections on {len(illustrations)} illustrations (green kept, red dropped, white raw box)", width)]
    parts += _rows([_draw(i, illustration_height) for i in illustrations], width)
    parts.append(_heading(f"kept crops: {len(kept.items)} of {kept.seen}", width))
    parts += _rows([cv2.resize(c, (tile, tile), interpolation=cv2.INTER_AREA) for c in kept.items], width)
    parts.append(_heading(f"dropped crops: {len(dropped.items)} of {dropped.seen}", width))
    tiles = []
    for crop, reason in dropped.items:
        t = cv2.resize(crop, (tile, tile), interpolation=cv2.INTER_AREA)
        _label(t, reason, (3, tile - 6), RED, 0.35)
        tiles.append(t)
    parts += _rows(tiles, width)
    return np.vstack(parts)

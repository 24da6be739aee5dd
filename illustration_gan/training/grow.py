"""Growing resolution (Karras et al. 2018, "Progressive Growing of GANs", ICLR; arXiv:1710.10196).

G and D start at `grow_from` pixels and grow to the image size a level (2x) at a time; each new
level fades in linearly (alpha 0 to 1) after the level below has trained alone for as long. ProGAN
gives each phase 600k images (its train.py `lod_training_kimg`, `lod_transition_kimg`), sized for
a GPU's days; here the growing takes GROW_SHARE of the run, by steps or by --max_minutes as the
learning-rate decay counts them, split into equal phases, and the rest trains at full size
(`callbacks.Grow` sets it before each call of the step). The networks keep their full-size interface (G's images and D's input are `image_size`):
networks/dcgan.py documents how a smaller level is entered and left.
"""

from __future__ import annotations

import math

GROW_SHARE = 0.5  # of the run spent below, or fading into, the full size


def stage(progress: float, start: int, final: int, share: float = GROW_SHARE) -> tuple[int, float]:
    """(resolution, alpha) at `progress` (0..1) of the run. Phases of share / (2 * levels) each:
    `start` alone, then per level a fade (alpha rising from 0) and, below the full size, the level alone."""
    levels = int(math.log2(final // start))
    phase_length = share / (2 * levels)
    if progress >= share:
        return final, 1.0
    phase, within = divmod(max(progress, 0.0) / phase_length, 1.0)
    phase = int(phase)
    if phase == 0:
        return start, 1.0
    level = (phase + 1) // 2
    return start << level, within if phase % 2 else 1.0

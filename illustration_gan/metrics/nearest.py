"""Nearest training images of generated images: a check for memorisation.

IllustrationGAN (tdrussell, 2016) showed each generated face next to the training
faces closest to it in pixel space (mean squared error), to show that the generator does
not just reproduce its training set. ``nearest_neighbours`` ranks training images by pixel
MSE, or by L2 distance between Inception features (closer to perceived similarity, the
space FID is measured in); ``nearest_neighbour_grid`` lays the result out as one picture.
"""

from __future__ import annotations

import numpy as np

GAP = 2  # pixels between tiles
SEPARATOR = 4  # height of the line between the generated row and the neighbours
GAP_COLOUR = (24, 24, 24)
SEPARATOR_COLOUR = (230, 40, 40)


def nearest_neighbours(fakes_uint8: np.ndarray, reals_uint8: np.ndarray, k: int = 5, metric: str = "mse",
                       block: int = 256) -> np.ndarray:
    """Indices (num_fakes, k) into ``reals_uint8`` of each fake's k nearest reals, nearest first.

    metric="mse": the arguments are images (N, H, W, 3) of one size; pixel mean squared error.
    metric="inception": the arguments are Inception features (N, 2048) of those images; L2.
    Reals are compared ``block`` at a time (in float64, so ties and near-ties rank exactly).
    """
    if metric not in ("mse", "inception"):
        raise ValueError(f"metric must be 'mse' or 'inception', not {metric!r}")
    if metric == "inception" and np.ndim(fakes_uint8) != 2:
        raise ValueError("metric='inception' takes feature arrays (N, 2048), not images")
    fakes = np.asarray(fakes_uint8, np.float64).reshape(len(fakes_uint8), -1)
    reals = np.asarray(reals_uint8).reshape(len(reals_uint8), -1)
    if fakes.shape[1] != reals.shape[1]:
        raise ValueError(f"fakes {np.shape(fakes_uint8)} and reals {np.shape(reals_uint8)} differ in size")
    k = min(k, len(reals))
    # Ranking by squared L2 distance = ranking by MSE; |fake|^2 is the same for every real, so left out.
    best_d = np.full((len(fakes), 0), np.inf)
    best_i = np.zeros((len(fakes), 0), np.int64)
    for start in range(0, len(reals), block):  # keep the k best seen so far
        chunk = reals[start : start + block].astype(np.float64)
        d = (chunk * chunk).sum(1)[None, :] - 2 * fakes @ chunk.T
        best_d = np.concatenate([best_d, d], axis=1)
        best_i = np.concatenate([best_i, np.broadcast_to(np.arange(start, start + len(chunk)), d.shape)], axis=1)
        keep = np.argsort(best_d, axis=1, kind="stable")[:, :k]
        best_d = np.take_along_axis(best_d, keep, axis=1)
        best_i = np.take_along_axis(best_i, keep, axis=1)
    return best_i


def nearest_neighbour_grid(fakes_uint8: np.ndarray, reals_uint8: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """One uint8 RGB picture: generated images along the top, under each its k nearest reals.

    Column j holds fake j and below it reals[indices[j, 0]], ..., reals[indices[j, k-1]].
    Tiles are GAP pixels apart; a SEPARATOR-pixel red line (with a GAP on either side)
    separates the generated row from the neighbours. Size:
    height (k+1)*H + (k+1)*GAP + SEPARATOR, width n*W + (n-1)*GAP.
    """
    fakes, reals, indices = np.asarray(fakes_uint8), np.asarray(reals_uint8), np.asarray(indices)
    n, h, w = fakes.shape[:3]
    k = indices.shape[1]
    if indices.shape[0] != n or reals.shape[1:] != fakes.shape[1:]:
        raise ValueError(f"fakes {fakes.shape}, reals {reals.shape} and indices {indices.shape} do not fit")
    height = (k + 1) * h + (k + 1) * GAP + SEPARATOR
    width = n * w + (n - 1) * GAP
    grid = np.empty((height, width, 3), np.uint8)
    grid[:] = GAP_COLOUR
    grid[h + GAP : h + GAP + SEPARATOR] = SEPARATOR_COLOUR
    for j in range(n):
        x = j * (w + GAP)
        grid[:h, x : x + w] = fakes[j]
        for r in range(k):
            y = h + 2 * GAP + SEPARATOR + r * (h + GAP)
            grid[y : y + h, x : x + w] = reals[indices[j, r]]
    return grid

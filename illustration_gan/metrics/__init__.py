"""Evaluation of generators: FID, KID, precision/recall and a nearest-neighbour check.

Modules, top to bottom:
inception (the FID Inception network and its weights) -> features (batched extraction,
cached real-set features) -> scores (FID, Heusel et al. 2017; KID, Binkowski et al. 2018;
improved precision/recall, Kynkäänniemi et al. 2019) -> nearest (memorisation check).
Beside them, coverage (imported on its own: ``from illustration_gan.metrics import
coverage``): mode coverage on the built-in toy faces with an attribute classifier.

Typical use::

    extractor = metrics.FeatureExtractor(weights_path)          # or None: env var / cache
    real = metrics.real_features("faces/", 64, 5000, extractor)  # cached on disk
    fake = metrics.generated_features(sample_fn, 5000, extractor)
    metrics.compute_all(real, fake)  # {'fid5k': ..., 'kid5k': ..., 'kid5k_std': ..., ...}
"""

from illustration_gan.metrics.features import (
    FeatureExtractor,
    default_features_cache_dir,
    generated_features,
    real_features,
)
from illustration_gan.metrics.inception import (
    DEFAULT_WEIGHTS_ENV,
    FIDWeightsInvalid,
    FIDWeightsNotFound,
    build_fid_inception,
    check_fid_weights,
    convert_tf_graph_to_npz,
    default_weights_cache_path,
    resolve_fid_weights,
)
from illustration_gan.metrics.nearest import nearest_neighbour_grid, nearest_neighbours
from illustration_gan.metrics.scores import (
    MIN_SAMPLES,
    TooFewSamples,
    compute_all,
    count_label,
    feature_statistics,
    fid_from_features,
    frechet_distance,
    kernel_inception_distance,
    precision_recall,
    sample_count_note,
)

__all__ = [
    "DEFAULT_WEIGHTS_ENV",
    "FIDWeightsInvalid",
    "FIDWeightsNotFound",
    "FeatureExtractor",
    "MIN_SAMPLES",
    "TooFewSamples",
    "build_fid_inception",
    "check_fid_weights",
    "compute_all",
    "convert_tf_graph_to_npz",
    "count_label",
    "default_features_cache_dir",
    "default_weights_cache_path",
    "feature_statistics",
    "fid_from_features",
    "frechet_distance",
    "generated_features",
    "kernel_inception_distance",
    "nearest_neighbour_grid",
    "nearest_neighbours",
    "precision_recall",
    "real_features",
    "resolve_fid_weights",
    "sample_count_note",
]

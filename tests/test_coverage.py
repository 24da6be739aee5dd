"""Mode coverage on the toy faces: the attribute classifier, the scores, the whole evaluation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from illustration_gan import toy_faces
from illustration_gan.metrics import coverage

SIZE = 32


@pytest.fixture(scope="module")
def classifier():
    """A quickly trained classifier (3000 faces, 3 epochs: about 10 s at 32x32)."""
    return coverage.train_attribute_classifier(SIZE, train_count=3000, epochs=3)


class ToySampler:
    """A "generator" drawing fresh toy faces: the data distribution itself."""

    image_size = SIZE

    def sample_uint8(self, n: int, seed: int = 0) -> np.ndarray:
        return coverage.toy_data(n, SIZE, seed=5000 + seed)[0]


class CollapsedSampler:
    """A generator collapsed onto one face: copies of a single toy face."""

    image_size = SIZE

    def __init__(self):
        self.face = coverage.toy_data(1, SIZE, seed=77)[0][0]

    def sample_uint8(self, n: int, seed: int = 0) -> np.ndarray:
        return np.repeat(self.face[None], n, axis=0)


def test_classifier_is_accurate_on_heldout_faces(classifier):
    accuracy = coverage.heldout_accuracy(classifier, SIZE, count=960)
    for head in coverage.HEADS:
        assert accuracy[head] >= 0.95, accuracy
    assert accuracy["combination"] >= 0.9, accuracy


def test_toy_data_covers_every_mode(classifier):
    scores = coverage.evaluate_coverage(ToySampler(), num_samples=960, classifier=classifier)
    assert scores["modes_covered"] == 48
    assert scores["coverage"] == 1.0
    assert scores["modes_covered_strict"] == 48
    assert scores["kl_to_uniform"] < 0.02  # exactly balanced faces: 0 when all are classified right
    for head in coverage.HEADS:
        assert scores[f"kl_{head}"] < 0.01
    assert scores["mean_confidence"] > 0.8
    assert scores["image_size"] == SIZE and scores["num_samples"] == 960


def test_collapsed_generator_covers_one_mode(classifier):
    sampler = CollapsedSampler()
    scores = coverage.evaluate_coverage(sampler, num_samples=480, classifier=classifier)
    assert scores["modes_covered"] == 1
    assert scores["coverage"] == pytest.approx(1 / 48)
    assert scores["kl_to_uniform"] == pytest.approx(math.log(48), abs=1e-6)
    assert scores["kl_hair"] == pytest.approx(math.log(6), abs=1e-6)
    assert scores["kl_eyes"] == pytest.approx(math.log(4), abs=1e-6)
    assert scores["kl_style"] == pytest.approx(math.log(2), abs=1e-6)
    assert scores["top_share"] == 1.0
    # ... and it is the face's own combination.
    _, labels = toy_faces.generate(1, seed=77 * 100_003)
    assert scores["counts"][coverage.combination_indices_of(labels)[0]] == 480


def test_scores_of_hand_made_indices():
    s = coverage.coverage_scores([0, 0, 1, 2], num_combinations=4)  # p = (1/2, 1/4, 1/4, 0)
    assert s["modes_covered"] == 3 and s["coverage"] == 0.75
    assert s["counts"] == [2, 1, 1, 0]
    assert s["kl_to_uniform"] == pytest.approx(0.5 * math.log(2), abs=1e-8)
    assert s["top_share"] == 0.5
    assert "kl_hair" not in s  # marginals only for the 48 toy-face combinations

    uniform = coverage.coverage_scores(np.arange(480) % 48)
    assert uniform["modes_covered"] == 48 and uniform["kl_to_uniform"] == pytest.approx(0.0, abs=1e-8)

    # 47 modes with 100 samples, one with 5: covered, but below 10% of its expected 4895/48.
    indices = np.concatenate([np.repeat(np.arange(47), 100), np.full(5, 47)])
    s = coverage.coverage_scores(indices)
    assert s["modes_covered"] == 48 and s["modes_covered_strict"] == 47
    assert s["coverage_strict"] == pytest.approx(47 / 48)
    p = np.array([100] * 47 + [5]) / 4705
    assert s["kl_to_uniform"] == pytest.approx(float(np.sum(p * np.log(p * 48))), abs=1e-8)

    # All samples with black hair and short style, eyes uniform: marginal KLs log 6, 0, log 2.
    black_short = [coverage.combination_index("black", eyes, "short") for eyes in toy_faces.ATTRIBUTES["eyes"]]
    s = coverage.coverage_scores(np.repeat(black_short, 3))
    assert s["modes_covered"] == 4
    assert s["kl_to_uniform"] == pytest.approx(math.log(12), abs=1e-8)
    assert s["kl_hair"] == pytest.approx(math.log(6), abs=1e-8)
    assert s["kl_eyes"] == pytest.approx(0.0, abs=1e-8)
    assert s["kl_style"] == pytest.approx(math.log(2), abs=1e-8)
    # Per value, its share over the expected share: black hair 6x, the other colours never drawn.
    assert s["share_hair"]["black"] == pytest.approx(6.0) and sum(s["share_hair"].values()) == pytest.approx(6.0)
    assert s["share_style"] == {"short": pytest.approx(2.0), "long": 0.0}
    assert s["share_eyes"] == {name: pytest.approx(1.0) for name in toy_faces.ATTRIBUTES["eyes"]}
    assert s["rarest_value"].endswith(" 0.00") and not s["rarest_value"].startswith("eyes")
    assert uniform["rarest_value"].endswith(" 1.00")

    with pytest.raises(ValueError):
        coverage.coverage_scores([48])
    assert coverage.coverage_scores([])["modes_covered"] == 0


def test_combination_names_match_toy_faces():
    _, labels = toy_faces.generate(48, seed=3)  # each combination exactly once
    indices = coverage.combination_indices_of(labels)
    assert sorted(indices.tolist()) == list(range(48))
    for index, label in zip(indices, labels):
        assert coverage.combination_attributes(index) == label
        assert coverage.combination_index(label["hair"], label["eyes"], label["style"]) == index
    pink_green_long = coverage.combination_index("pink", "green", "long")
    assert coverage.combination_name(pink_green_long) == "pink hair, green eyes, long"
    assert coverage.combination_index(5, 3, 1) == 47


def test_classifier_is_cached(classifier, tmp_path, monkeypatch):
    calls = []

    def fake_train(image_size, *args, **kwargs):
        calls.append(image_size)
        return classifier

    monkeypatch.setattr(coverage, "train_attribute_classifier", fake_train)
    first = coverage.load_or_train_classifier(SIZE, cache_dir=str(tmp_path))
    assert calls == [SIZE]
    path = coverage.classifier_path(SIZE, str(tmp_path))
    assert f"-v{toy_faces.VERSION}-" in path and path.endswith(f"-{SIZE}px.keras")
    assert coverage.classifier_record(SIZE, str(tmp_path))["heldout_accuracy"]["hair"] >= 0.95
    second = coverage.load_or_train_classifier(SIZE, cache_dir=str(tmp_path))
    assert calls == [SIZE]  # loaded, not retrained
    images = coverage.toy_data(96, SIZE, seed=9)[0]
    np.testing.assert_array_equal(coverage.classify(first, images), coverage.classify(second, images))


def test_classify_rejects_wrong_size(classifier):
    with pytest.raises(ValueError, match="32x32"):
        coverage.classify(classifier, np.zeros((2, 64, 64, 3), np.uint8))


def test_evaluates_a_real_sampler(classifier):
    from illustration_gan.config import ModelConfig
    from illustration_gan.generate import Sampler
    from illustration_gan.networks import build_networks

    config = ModelConfig(architecture="dcgan", image_size=SIZE, g_width=8, d_width=8, z_dim=16)
    sampler = Sampler(build_networks(config).generator)
    scores = coverage.evaluate_coverage(sampler, num_samples=96, seed=1, classifier=classifier)
    assert 1 <= scores["modes_covered"] <= 48 and sum(scores["counts"]) == 96
    assert scores == coverage.evaluate_coverage(sampler, num_samples=96, seed=1, classifier=classifier)

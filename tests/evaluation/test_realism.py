import numpy as np
import pytest

from causaldiffae.evaluation.realism import frechet_distance, l1_pixels


def test_frechet_distance_of_gaussians_matches_closed_form():
    rng = np.random.default_rng(0)
    a = rng.normal(0, 1, (20000, 2))
    b = rng.normal(0, 2, (20000, 2)) + np.array([3.0, 0.0])
    # |mu|^2 = 9; tr(I + 4I - 2*2I) = 2
    assert frechet_distance(a, b) == pytest.approx(11.0, rel=0.05)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)


def test_frechet_distance_survives_singular_covariance():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(5, 20))
    d = frechet_distance(a, a + 1.0)
    assert np.isfinite(d) and d == pytest.approx(20.0, rel=0.05)


def test_l1_pixels_uses_unit_range():
    a = -np.ones((2, 1, 4, 4))
    b = np.ones((2, 1, 4, 4))
    np.testing.assert_allclose(l1_pixels(a, b), [1.0, 1.0])
    np.testing.assert_allclose(l1_pixels(a, a), [0.0, 0.0])

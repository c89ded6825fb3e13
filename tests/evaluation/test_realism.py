import numpy as np
import pytest

from causaldiffae.evaluation.realism import frechet_distance, gaussian_stats, l1_pixels


def test_frechet_distance_of_gaussians_matches_closed_form():
    rng = np.random.default_rng(0)
    a = rng.normal(0, 1, (20000, 2))
    b = rng.normal(0, 2, (20000, 2)) + np.array([3.0, 0.0])
    # |mu|^2 = 9; tr(I + 4I - 2*2I) = 2
    assert frechet_distance(a, b) == pytest.approx(11.0, rel=0.05)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)


def _frechet_by_eigendecomposition(a: np.ndarray, b: np.ndarray) -> float:
    """The same distance by another route: tr (S_a S_b)^{1/2} = tr (S_a^{1/2} S_b S_a^{1/2})^{1/2}."""
    mu_a, s_a = gaussian_stats(a)
    mu_b, s_b = gaussian_stats(b)
    w, v = np.linalg.eigh(s_a)
    root_a = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    cross = np.sqrt(np.clip(np.linalg.eigvalsh(root_a @ s_b @ root_a), 0, None)).sum()
    return float((mu_a - mu_b) @ (mu_a - mu_b) + np.trace(s_a) + np.trace(s_b) - 2 * cross)


def test_frechet_distance_with_covariances_that_do_not_commute():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(3000, 3)) @ np.array([[2.0, 0.0, 0.0], [1.5, 0.5, 0.0], [0.0, 0.3, 1.0]])
    b = rng.normal(size=(3000, 3)) @ np.array([[0.5, 1.0, 0.0], [0.0, 1.0, 2.0], [1.0, 0.0, 0.2]]) + 1.0
    _, s_a = gaussian_stats(a)
    _, s_b = gaussian_stats(b)
    assert not np.allclose(s_a @ s_b, s_b @ s_a)
    assert frechet_distance(a, b) == pytest.approx(_frechet_by_eigendecomposition(a, b), rel=1e-6)


def test_frechet_distance_retries_with_a_ridge_when_the_square_root_fails(monkeypatch):
    from scipy import linalg

    real, calls = linalg.sqrtm, []

    def failing_once(m):
        calls.append(m)
        return np.full_like(m, np.nan) if len(calls) == 1 else real(m)

    monkeypatch.setattr(linalg, "sqrtm", failing_once)
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(500, 2)), rng.normal(size=(500, 2)) * 2
    assert frechet_distance(a, b) == pytest.approx(_frechet_by_eigendecomposition(a, b), rel=1e-4)
    assert len(calls) == 2


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


def test_frechet_distance_of_one_feature():
    rng = np.random.default_rng(3)
    a, b = rng.normal(0, 1, (20000, 1)), rng.normal(2, 1, (20000, 1))
    assert frechet_distance(a, b) == pytest.approx(4.0, rel=0.05)


def test_frechet_distance_warns_when_the_square_root_is_not_real(monkeypatch):
    from scipy import linalg

    real = linalg.sqrtm
    monkeypatch.setattr(linalg, "sqrtm", lambda m: real(m) + 0.5j)
    rng = np.random.default_rng(4)
    a = rng.normal(size=(500, 2))
    with pytest.warns(RuntimeWarning, match=r"imaginary part of 0.5 \(traces [\d.]+\); the distance is unreliable$"):
        assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    few = rng.normal(size=(3, 4))  # fewer images than features: the usual cause, named
    with pytest.warns(RuntimeWarning, match="3 and 3 images for 4 features leave the covariances singular: score more images"):
        frechet_distance(few, few)


def test_frechet_distance_warns_when_it_comes_out_clearly_negative(monkeypatch):
    from scipy import linalg

    real = linalg.sqrtm
    monkeypatch.setattr(linalg, "sqrtm", lambda m: 2 * real(m))  # a square root twice too large: the trace term overshoots
    a = np.random.default_rng(5).normal(size=(500, 2))
    with pytest.warns(RuntimeWarning, match="came out negative"):
        assert frechet_distance(a, a) == 0.0

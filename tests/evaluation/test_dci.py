import numpy as np
import pytest

from causaldiffae.evaluation.dci import block_codes, completeness, dci, disentanglement


def test_scores_of_ideal_and_mixed_importance_matrices():
    assert disentanglement(np.eye(3)) == pytest.approx(1.0)
    assert completeness(np.eye(3)) == pytest.approx(1.0)
    assert disentanglement(np.ones((3, 3))) == pytest.approx(0.0)
    assert completeness(np.ones((3, 3))) == pytest.approx(0.0)
    # one code capturing two factors: completeness stays 1, disentanglement drops
    r = np.array([[1.0, 1.0], [0.0, 0.0]])
    assert completeness(r) == pytest.approx(1.0)
    assert disentanglement(r) == pytest.approx(0.0)


def test_more_codes_than_factors_tell_disentanglement_from_completeness():
    """Three codes, two factors: entropies over factors use base K = 2, over codes base D = 3."""
    split = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])  # factor 0 spread over two codes
    assert disentanglement(split) == pytest.approx(1.0)
    assert completeness(split) == pytest.approx((1 - np.log(2) / np.log(3) + 1) / 2)
    shared = np.array([[1.0, 1.0], [0.0, 0.0], [0.0, 0.0]])  # one code carries both factors
    assert disentanglement(shared) == pytest.approx(0.0)
    assert completeness(shared) == pytest.approx(1.0)


def test_a_factor_copied_into_two_codes_is_disentangled_but_incomplete():
    rng = np.random.default_rng(2)
    factors = rng.uniform(-1, 1, (500, 2))
    codes = factors[:, [0, 0, 1]] + rng.normal(0, 0.01, (500, 3))
    out = dci(codes[:400], factors[:400], codes[400:], factors[400:], method="lasso")
    assert out["disentanglement"] > 0.9 and out["completeness"] < 0.8


@pytest.mark.parametrize("method", ["gbt", "lasso"])
def test_perfect_code_scores_near_one_and_mixed_code_far_less(method):
    rng = np.random.default_rng(0)
    factors = rng.uniform(-1, 1, (600, 3))
    perfect = factors + rng.normal(0, 0.01, factors.shape)
    mixing = np.array([[1.0, 1.0, 0.0], [0.0, 1.0, 1.0], [1.0, 0.0, 1.0]])
    mixed = factors @ mixing + rng.normal(0, 0.01, factors.shape)
    good = dci(perfect[:400], factors[:400], perfect[400:], factors[400:], method=method)
    bad = dci(mixed[:400], factors[:400], mixed[400:], factors[400:], method=method)
    assert good["disentanglement"] > 0.9 and good["completeness"] > 0.9
    assert good["informativeness_r2"] > 0.95
    assert bad["disentanglement"] < good["disentanglement"] - 0.3
    assert bad["completeness"] < good["completeness"] - 0.3


def test_informativeness_is_held_out_r2_not_float_equality():
    rng = np.random.default_rng(1)
    factors = rng.normal(size=(400, 2))
    noise_codes = rng.normal(size=(400, 4))  # carries no information about the factors
    out = dci(noise_codes[:300], factors[:300], noise_codes[300:], factors[300:], method="lasso")
    assert out["informativeness_r2"] < 0.1
    informative = np.concatenate([factors, rng.normal(size=(400, 2))], axis=1)
    out = dci(informative[:300], factors[:300], informative[300:], factors[300:], method="lasso")
    assert out["informativeness_r2"] > 0.95
    assert max(out["mae"]) < 0.1


def test_block_codes_average_each_block():
    z = np.arange(12, dtype=float).reshape(2, 6)
    np.testing.assert_allclose(block_codes(z, 2), [[1, 4], [7, 10]])
    with pytest.raises(ValueError, match="divisible"):
        block_codes(z, 4)


def test_one_factor_or_one_code_leaves_the_score_undefined():
    """With one factor every code trivially serves one factor; a perfect 1.0 there would mean nothing."""
    assert disentanglement(np.array([[0.7], [0.3]])) is None
    assert completeness(np.array([[0.4, 0.6]])) is None
    assert completeness(np.array([[0.7], [0.3]])) == pytest.approx(1 - (-(0.7 * np.log(0.7) + 0.3 * np.log(0.3)) / np.log(2)))

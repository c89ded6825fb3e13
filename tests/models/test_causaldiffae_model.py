import pytest
import torch

from causaldiffae.diffusion import ddim_sample, ddim_timesteps
from causaldiffae.errors import UserError
from causaldiffae.graph import CausalGraph
from causaldiffae.models import CausalDiffAE
from training_fixtures import tiny_config

GRAPH = CausalGraph.parse("a -> b")


def _model(*overrides: str, num_classes: int = 0) -> CausalDiffAE:
    config = tiny_config(*overrides)
    return CausalDiffAE(config.model, GRAPH, (1, 8, 8), num_classes, config.diffusion)


def _batch(b: int = 6) -> dict[str, torch.Tensor]:
    return {
        "image": torch.rand(b, 1, 8, 8) * 2 - 1,
        "labels": torch.randn(b, 2),
        "class": torch.randint(0, 3, (b,)),
        "labeled": torch.ones(b, dtype=torch.bool),
    }


@pytest.mark.parametrize(
    "variant,mechanisms,label_prior,encoder,block",
    [
        ("causaldiffae", True, True, True, 4),
        ("diffae", False, False, True, 4),
        ("diffae-aligned", False, True, True, 4),
        ("label-conditional", False, False, False, 1),
    ],
)
def test_variants_by_configuration(variant, mechanisms, label_prior, encoder, block):
    model = _model(f"model.variant={variant}")
    assert model.variant == variant
    assert model.has_mechanisms is mechanisms and (model.causal is not None) is mechanisms
    assert model.has_label_prior is label_prior
    assert (model.encoder is not None) is encoder
    assert model.block_size == block
    terms = model.loss(_batch(), kl_scale=1.0, generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(terms["loss"])
    assert bool(terms["kl_label"] > 0) is label_prior
    assert bool(terms["kl_u"] > 0) is encoder
    terms["loss"].backward()


def test_label_conditional_has_no_encoder_and_conditions_on_labels():
    model = _model("model.variant=label-conditional")
    with pytest.raises(UserError, match="no encoder"):
        model.encode(torch.zeros(1, 1, 8, 8))
    batch = _batch()
    assert torch.equal(model.latent(batch)["z"], batch["labels"])


def test_contract_shapes():
    model = _model("model.class_conditional=true", num_classes=3)
    x = torch.rand(5, 1, 8, 8)
    mu, logvar = model.encode(x)
    assert mu.shape == logvar.shape == (5, 8)
    z = model.propagate(mu)
    z2 = model.intervene(mu, {"a": torch.zeros(5, 4)})
    assert z.shape == z2.shape == (5, 8)
    assert torch.equal(z2[:, :4], torch.zeros(5, 4)) and not torch.equal(z2[:, 4:], z[:, 4:])
    assert torch.equal(model.intervene(mu, {"a": 0.0}), z2)  # a scalar fills every block
    cond = model.condition(z, torch.tensor([0, 1, 2, -1, 0]))
    assert cond.shape == (5, model.decoder.emb_dim)
    eps = model.eps(x, torch.full((5,), 7), cond)
    assert eps.shape == x.shape
    assert model.scheduler.config.num_train_timesteps == 100


def test_the_class_shapes_the_condition_and_an_unknown_class_adds_nothing():
    model = _model("model.class_conditional=true", num_classes=3)
    z = torch.randn(4, 8)
    assert not torch.allclose(model.condition(z, torch.full((4,), 2)), model.condition(z, torch.zeros(4, dtype=torch.long)))
    torch.testing.assert_close(model.condition(z, torch.full((4,), -1)), model.condition(z, None), rtol=0, atol=0)


def test_training_noise_on_u_has_sd_sqrt_s_times_the_posterior_sd():
    model = _model("model.z_noise_scale=0.25")
    batch = _batch(b=2000)
    mu, logvar = model.encode(batch["image"])
    z = model.latent(batch, torch.Generator().manual_seed(0))["z"]
    ratio = (z[:, :4] - mu[:, :4]) / (0.25**0.5 * (0.5 * logvar[:, :4]).exp())  # root block a: z = u
    assert abs(ratio.mean().item()) < 0.05 and abs(ratio.std().item() - 1.0) < 0.05


def test_null_condition_is_zero_and_differs_from_zero_latent():
    model = _model()
    null = model.condition(None)
    assert torch.equal(null, torch.zeros(1, model.decoder.emb_dim))
    assert not torch.equal(model.condition(torch.zeros(1, 8)), null)  # Linear(z) has a bias
    keep = torch.tensor([True, False])
    cond = model.condition(torch.randn(2, 8), keep=keep)
    assert torch.equal(cond[1], torch.zeros(model.decoder.emb_dim)) and cond[0].abs().sum() > 0


def test_unlabeled_samples_have_no_label_prior_term():
    model = _model("model.labeled_fraction=0.5")
    batch = _batch()
    batch["labeled"] = torch.zeros(6, dtype=torch.bool)
    terms = model.loss(batch, 1.0, torch.Generator().manual_seed(0))
    assert terms["kl_label"] == 0
    # Labels of unlabeled samples are ignored entirely: changing them changes nothing.
    batch2 = dict(batch, labels=batch["labels"] + 100.0)
    terms2 = model.loss(batch2, 1.0, torch.Generator().manual_seed(0))
    assert torch.equal(terms["loss"], terms2["loss"])
    assert model.has_null_condition
    # ... and they train with the null condition: their latent does not reach the decoder.
    before = model.loss(batch, 0.0, torch.Generator().manual_seed(1))["mse"]
    model.encoder.mean.bias.data += 5.0
    torch.testing.assert_close(model.loss(batch, 0.0, torch.Generator().manual_seed(1))["mse"], before)
    batch["labeled"] = torch.ones(6, dtype=torch.bool)
    labeled = model.loss(batch, 0.0, torch.Generator().manual_seed(1))["mse"]
    model.encoder.mean.bias.data -= 5.0
    assert not torch.allclose(model.loss(batch, 0.0, torch.Generator().manual_seed(1))["mse"], labeled)


def test_label_prior_counts_only_labeled_samples():
    model = _model()
    batch = _batch()
    full = model.loss(batch, 1.0, torch.Generator().manual_seed(0))["kl_label"]
    batch["labeled"] = torch.tensor([True, True, True, False, False, False])
    half = model.loss(batch, 1.0, torch.Generator().manual_seed(0))["kl_label"]
    assert 0 < half < full


def test_kl_terms_are_per_dimension_means():
    model = _model("model.z_noise_scale=0")
    batch = _batch()
    mu, logvar = model.encode(batch["image"])
    terms = model.loss(batch, 1.0, torch.Generator().manual_seed(0))
    expected_u = 0.5 * (mu.square() + logvar.exp() - 1 - logvar).mean()
    z = model.propagate(mu)
    expected_label = 0.5 * (z - batch["labels"].repeat_interleave(4, 1)).square().mean()
    torch.testing.assert_close(terms["kl_u"], expected_u)
    torch.testing.assert_close(terms["kl_label"], expected_label)
    torch.testing.assert_close(terms["loss"], terms["mse"] + expected_u + expected_label)
    scaled = model.loss(batch, 0.0, torch.Generator().manual_seed(0))
    torch.testing.assert_close(scaled["loss"], scaled["mse"])


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_a_decoder_that_knows_the_image_has_no_loss_and_samples_it(prediction_type):
    """An oracle decoder outputs the exact target for one known image: the loss must vanish and
    DDIM, which speaks eps, must land on the image, whichever quantity the decoder predicts."""
    model = _model(f"diffusion.prediction_type={prediction_type}")
    batch = _batch()
    x0 = batch["image"]

    def oracle(x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        a = model.alphas_cumprod[t].view(-1, 1, 1, 1)
        eps = (x_t - a.sqrt() * x0[: len(x_t)]) / (1 - a).sqrt()
        return eps if prediction_type == "epsilon" else a.sqrt() * eps - (1 - a).sqrt() * x0[: len(x_t)]

    model.decoder.forward = oracle
    assert model.loss(batch, 0.0, torch.Generator().manual_seed(0))["mse"] < 1e-8
    cond = model.condition(model.latent(batch)["z"])
    x_T = torch.randn(x0.shape, generator=torch.Generator().manual_seed(1))
    ts = ddim_timesteps(model.scheduler.config.num_train_timesteps, 5)
    out = ddim_sample(lambda x, t: model.eps(x, t, cond), x_T, ts, model.alphas_cumprod)
    torch.testing.assert_close(out, x0, atol=1e-3, rtol=0)


def test_condition_dropout_uses_the_null_condition():
    model = _model("model.cond_drop_prob=0.5")
    model.config.cond_drop_prob = 1.0  # past the config's check (< 1), so that every sample drops, whatever the draw
    batch = _batch()
    before = model.loss(batch, 0.0, torch.Generator().manual_seed(1))["mse"]
    model.encoder.mean.bias.data += 5.0  # a different z ...
    after = model.loss(batch, 0.0, torch.Generator().manual_seed(1))["mse"]
    torch.testing.assert_close(before, after)  # ... is irrelevant
    model.config.cond_drop_prob = 0.0
    assert not torch.allclose(model.loss(batch, 0.0, torch.Generator().manual_seed(1))["mse"], after)  # unless it is used


def test_style_block_is_exogenous_to_every_variable():
    model = _model("model.style_dim=3")
    assert model.encode(_batch()["image"])[0].shape == (6, 2 * 4 + 3)
    u = torch.randn(5, 2 * 4 + 3)
    z = model.propagate(u)
    torch.testing.assert_close(z[:, 8:], u[:, 8:])
    assert model.blocks(z).shape == (5, 2, 4)
    torch.testing.assert_close(model.blocks(z).reshape(5, -1), model.causal(u[:, :8]))
    for name in ("a", "b"):
        z_cf = model.intervene(u, {name: torch.full((5, 4), 2.0)})
        torch.testing.assert_close(z_cf[:, 8:], u[:, 8:], rtol=0, atol=0)
        assert torch.equal(model.blocks(z_cf)[:, GRAPH.index(name)], torch.full((5, 4), 2.0))
    assert not torch.equal(model.intervene(u, {"a": torch.full((5, 4), 2.0)})[:, 4:8], z[:, 4:8])  # b is a's child


def test_style_block_has_its_own_kl_and_no_label_prior():
    model = _model("model.z_noise_scale=0", "model.style_dim=3", "model.style_kl_weight=0.5")
    batch = _batch()
    mu, logvar = model.encode(batch["image"])
    kl = 0.5 * (mu.square() + logvar.exp() - 1 - logvar)
    terms = model.loss(batch, 1.0, torch.Generator().manual_seed(0))
    z = model.propagate(mu)
    expected_label = 0.5 * (z[:, :8] - batch["labels"].repeat_interleave(4, 1)).square().mean()
    torch.testing.assert_close(terms["kl_u"], kl[:, :8].mean())
    torch.testing.assert_close(terms["kl_style"], kl[:, 8:].mean())
    torch.testing.assert_close(terms["kl_label"], expected_label)
    torch.testing.assert_close(terms["loss"], terms["mse"] + terms["kl_u"] + expected_label + 0.5 * terms["kl_style"])


def test_style_dropout_hides_only_the_style_block():
    model = _model("model.style_dim=3", "model.style_drop_prob=0.99")
    batch = _batch()
    before = model.loss(batch, 0.0, torch.Generator().manual_seed(1))["mse"]
    model.encoder.mean.bias.data[8:] += 5.0  # a different style ...
    torch.testing.assert_close(model.loss(batch, 0.0, torch.Generator().manual_seed(1))["mse"], before)  # ... is dropped
    model.encoder.mean.bias.data[:8] += 5.0  # a different causal latent is not
    assert not torch.equal(model.loss(batch, 0.0, torch.Generator().manual_seed(1))["mse"], before)


@pytest.mark.parametrize("mult", ["[2,2]", "[1,2]"])
def test_the_condition_matches_the_unets_time_embedding_whatever_the_first_multiplier(mult):
    model = _model(f"model.channel_mult={mult}", num_classes=3)
    assert model.decoder.emb_dim == 4 * 8 * int(mult[1])
    terms = model(_batch(), kl_scale=1.0, generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(terms["loss"])


def test_loss_weights_each_kl_term():
    torch.manual_seed(0)
    model = _model("model.kl_weight=0.5", "model.label_weight=2.0")
    t = model.loss(_batch(), 0.5, torch.Generator().manual_seed(0))
    torch.testing.assert_close(t["loss"], t["mse"] + 0.5 * (0.5 * t["kl_u"] + 2.0 * t["kl_label"]))


def test_label_prior_is_additive_over_disjoint_labeled_subsets():
    torch.manual_seed(0)
    model = _model("model.labeled_fraction=0.5")
    batch = _batch()
    kl = lambda mask: model.loss(dict(batch, labeled=mask), 1.0, torch.Generator().manual_seed(0))["kl_label"]  # noqa: E731
    first = torch.tensor([True, True, True, False, False, False])
    torch.testing.assert_close(kl(first) + kl(~first), kl(torch.ones(6, dtype=torch.bool)))


def test_kl_u_gradient_reaches_the_posterior_mean():
    torch.manual_seed(0)
    model = _model("model.z_noise_scale=0")
    batch = _batch()
    grads = []
    for w in (1.0, 0.0):
        model.config.kl_weight = w
        model.zero_grad()
        model.loss(batch, 1.0, torch.Generator().manual_seed(0))["loss"].backward()
        grads.append(model.encoder.mean.bias.grad.clone())
    mu, logvar = model.encode(batch["image"])
    expected = torch.autograd.grad(0.5 * (mu[:, :8].square() + logvar[:, :8].exp() - 1 - logvar[:, :8]).mean(), model.encoder.mean.bias)[0]
    torch.testing.assert_close(grads[0] - grads[1], expected, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("variant", ["causaldiffae", "diffae"])
def test_a_do_value_must_be_one_block_per_sample(variant):
    model = _model(f"model.variant={variant}")
    u = torch.randn(4, 8)
    # (B,) with B == block would broadcast along the block, giving every sample the same block
    with pytest.raises(UserError, match=r"do\(a=\.\.\.\): expected a scalar or a \(4, 4\) block per sample, got shape \(4,\)"):
        model.intervene(u, {"a": torch.arange(4.0)})
    with pytest.raises(UserError, match=r"got shape \(3, 4\)"):
        model.intervene(u, {"a": torch.zeros(3, 4)})

"""Counterfactual API on tiny models: latent bookkeeping, abduction quality, variants and bad input."""

import numpy as np
import pytest
import torch

import causaldiffae.counterfactual as cf
from causaldiffae.config import ModelConfig
from causaldiffae.counterfactual import CounterfactualError, abduct, counterfactual, intervene
from causaldiffae.diffusion import ddim_timesteps
from causaldiffae.graph import CausalGraph
from causaldiffae.models import CausalDiffAE

GRAPH = CausalGraph.parse("a -> b; c")  # c is a non-descendant of everything
MEAN = np.array([2.0, 10.0, -1.0])
STD = np.array([0.5, 4.0, 2.0])


def tiny(variant="causaldiffae", num_classes=0, cond_drop=0.0, graph=GRAPH, block=4, seed=0, style=0) -> CausalDiffAE:
    torch.manual_seed(seed)
    config = ModelConfig(
        variant=variant, latent_block=block, encoder_channels=[8, 16], base_channels=8, channel_mult=[1, 2],
        layers_per_block=1, attention_levels=[], mid_attention=False, norm_groups=4,
        class_conditional=num_classes > 0, cond_drop_prob=cond_drop, style_dim=style,
    )
    model = CausalDiffAE(config, graph, (1, 8, 8), num_classes=num_classes)
    model.set_label_stats(MEAN[: len(graph)], STD[: len(graph)])
    return model.eval()


def images(n=4, seed=0):
    return torch.rand(n, 1, 8, 8, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def blocks(z, model):
    return z.view(z.shape[0], len(model.graph), -1)


def test_set_mode_fixes_block_recomputes_descendant_and_leaves_non_descendant_bit_identical():
    model = tiny()
    abd = abduct(model, images(), steps=2)
    z_cf, _ = intervene(model, abd, {"a": np.full(4, 3.0)}, label_mean=MEAN, label_std=STD, mode="set")
    zb, zc = blocks(abd.z, model), blocks(z_cf, model)
    assert torch.equal(zc[:, 2], zb[:, 2])  # c: non-descendant, bit-identical
    torch.testing.assert_close(zc[:, 0], torch.full((4, 4), (3.0 - 2.0) / 0.5))  # a: whole block = standardised value
    assert not torch.allclose(zc[:, 1], zb[:, 1])  # b: descendant, recomputed by its mechanism
    # b's own abducted noise is kept: b' - f_b(a') equals b - f_b(a)
    u = abd.u.view(4, 3, -1)
    mech = model.causal.mechanisms[0]
    f_new = mech(z_cf)[:, 0]
    torch.testing.assert_close(zc[:, 1] - f_new, u[:, 1])

    z_b, _ = intervene(model, abd, {"b": np.array([4.0, 6.0, 8.0, 10.0])}, label_mean=MEAN, label_std=STD)
    assert torch.equal(blocks(z_b, model)[:, 0], zb[:, 0]) and torch.equal(blocks(z_b, model)[:, 2], zb[:, 2])


def test_shift_mode_moves_block_mean_and_keeps_residual():
    model = tiny()
    abd = abduct(model, images(), steps=2)
    z_cf, _ = intervene(model, abd, {"c": np.array([0.0, 1.0, 2.0, 3.0])}, label_mean=MEAN, label_std=STD, mode="shift")
    old, new = blocks(abd.z, model)[:, 2], blocks(z_cf, model)[:, 2]
    target = torch.tensor([0.0, 1.0, 2.0, 3.0]).sub(-1.0).div(2.0)
    torch.testing.assert_close(new.mean(1), target)
    torch.testing.assert_close(new - new.mean(1, keepdim=True), old - old.mean(1, keepdim=True))
    assert torch.equal(blocks(z_cf, model)[:, :2], blocks(abd.z, model)[:, :2])


def test_counterfactual_reports_values_in_natural_units_and_supports_joint_batched_do():
    model = tiny()
    out = counterfactual(model, images(), {"a": [1.0, 2.0, 3.0, 4.0], "c": 5.0}, steps=2)
    assert out.images.shape == (4, 1, 8, 8)
    assert out.images.min() >= -1 and out.images.max() <= 1
    np.testing.assert_allclose(out.values[:, 0], [1, 2, 3, 4], atol=1e-5)
    np.testing.assert_allclose(out.values[:, 2], 5.0, atol=1e-5)
    np.testing.assert_allclose(out.factual_values[:, 2], out.z.view(4, 3, -1)[:, 2].mean(1).numpy() * 2 - 1, atol=1e-5)


def test_the_style_block_survives_every_intervention_and_is_not_read_as_a_value():
    model = tiny(style=5)
    abd = abduct(model, images(), steps=2)
    assert abd.z.shape == (4, 3 * 4 + 5)
    for mode in ("set", "shift"):
        z_cf, _ = intervene(model, abd, {"a": np.full(4, 3.0), "c": np.zeros(4)}, label_mean=MEAN, label_std=STD, mode=mode)
        assert torch.equal(z_cf[:, 12:], abd.z[:, 12:])
        torch.testing.assert_close(model.blocks(z_cf)[:, 0].mean(1), torch.full((4,), 2.0))
    out = counterfactual(model, images(), {"a": [1.0, 2.0, 3.0, 4.0]}, steps=2)
    np.testing.assert_allclose(out.values[:, 0], [1, 2, 3, 4], atol=1e-5)
    assert out.values.shape == (4, 3)


def test_variants_without_mechanisms_do_not_propagate():
    aligned = tiny("diffae-aligned")
    abd = abduct(aligned, images(), steps=2)
    z_cf, _ = intervene(aligned, abd, {"a": np.full(4, 3.0)}, label_mean=MEAN, label_std=STD)
    assert torch.equal(blocks(z_cf, aligned)[:, 1:], blocks(abd.z, aligned)[:, 1:])

    labelcond = tiny("label-conditional")
    labels = np.array([[2.0, 10.0, -1.0], [2.5, 14.0, 1.0], [1.5, 6.0, -3.0], [2.0, 2.0, 0.0]])
    out = counterfactual(labelcond, images(), {"a": 3.0}, steps=2, labels=labels)
    expected = labels.copy()
    expected[:, 0] = 3.0
    np.testing.assert_allclose(out.values, expected, atol=1e-5)
    with pytest.raises(CounterfactualError, match="needs the images' labels"):
        counterfactual(labelcond, images(), {"a": 3.0}, steps=2)
    for bad in (labels[:1], labels[:, :2]):  # one row would condition every image on it
        with pytest.raises(CounterfactualError, match=r"labels: expected shape \(4, 3\)"):
            counterfactual(labelcond, images(), {"a": 3.0}, steps=2, labels=bad)


def test_do_digit_on_class_conditional_model_and_guidance():
    model = tiny(num_classes=3, cond_drop=0.1)
    out = counterfactual(model, images(), {"digit": 2}, steps=2, class_labels=[0, 1, 2, 0])
    assert out.class_labels.tolist() == [2, 2, 2, 2]
    same = counterfactual(model, images(), {}, steps=2, class_labels=[0, 1, 2, 0]).images
    changed = (out.images - same).abs().flatten(1).amax(1)
    assert changed[2] < 1e-5 and bool((changed[[0, 1, 3]] > 1e-3).all())  # only the digits whose class changed
    def edit(w):  # the same abduction noise each time, so only w can change the images
        return counterfactual(model, images(), {"a": 3.0}, steps=3, w=w, class_labels=[0, 1, 2, 0],
                              generator=torch.Generator().manual_seed(0)).images

    plain = edit(1.0)
    torch.testing.assert_close(edit(1.0), plain, rtol=0, atol=0)
    assert (edit(3.0) - plain).abs().mean() > 1e-3


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"do": {"thickness": 1.0}}, r"not a variable of the graph \(variables: a, b, c\)"),
        ({"do": {"aa": 1.0}}, r"cannot intervene on 'aa': not a variable of the graph \(did you mean 'a'\? variables: a, b, c\)"),
        ({"do": {"a": "thick"}}, "is not a number"),
        ({"do": {"a": [1.0, 2.0]}}, "expected a scalar or 4 values"),
        ({"do": {"a": float("nan")}}, "must be finite"),
        ({"do": {"digit": 1}}, "needs a class-conditional model"),
        ({"do": {}, "w": 2.0}, "from the null condition needs a model trained with one"),
        ({"do": {}, "guidance": "prior"}, "unknown guidance reference"),
        ({"do": {}, "mode": "replace"}, "unknown mode"),
        ({"do": {}, "abduction": "guess"}, "unknown abduction"),
        ({"do": {}, "steps": 0}, "steps must be an integer"),
        ({"do": {}, "start": 0.0}, "start must lie in"),
        ({"do": {}, "start": 1.5}, "start must lie in"),
        ({"do": {}, "start": 0.001, "steps": 2}, "leave at least steps=2"),
        ({"do": {}, "spacing": "cosine"}, "unknown timestep spacing"),
        ({"do": {}, "w": float("nan")}, "guidance w must be a finite number"),
        ({"do": {"digit": 5}, "classes": 3}, r"classes are integers in 0..2, got \[5"),
        ({"do": {"digit": 1.5}, "classes": 3}, "classes are integers in 0..2"),
        ({"do": {"digit": 1, "class": 2}, "classes": 3}, "do: digit and class name the same class input; give one"),
        ({"do": {}, "classes": 3, "class_labels": [0, 3, 1, 1]}, r"class_labels: 3 is not a class of this model \(use -1 for unknown, or 0..2\)"),
        ({"do": {}, "classes": 3, "class_labels": [0, -2, 1, 1]}, "class_labels: -2 is not a class"),
        ({"do": {}, "images": torch.zeros(4, 1, 16, 16)}, r"images: expected shape \(B, 1, 8, 8\) for this model, got \(4, 1, 16, 16\)$"),
        ({"do": {}, "images": torch.zeros(4, 8, 8, 1)}, r"got \(4, 8, 8, 1\); channels last\? use x.permute\(0, 3, 1, 2\)"),
        ({"do": {}, "images": torch.zeros(1, 8, 8)}, r"expected shape \(B, 1, 8, 8\)"),
        ({"do": {}, "images": torch.full((4, 1, 8, 8), 255.0)}, r"pixel values must lie in \[-1, 1\], got 255..255 \(uint8 pixels: x / 127.5 - 1\)"),
        ({"do": {}, "images": torch.full((4, 1, 8, 8), float("nan"))}, r"pixel values must lie in \[-1, 1\]"),
        ({"do": {}, "images": torch.zeros(0, 1, 8, 8)}, r"images: an empty batch"),
        ({"do": [("a", 2.0)]}, r"do: expected a mapping of variable names to values, e\.g\. \{'thickness': 4\.0\}; got list"),
        ({"do": {}, "classes": 3, "class_labels": [0, 1.7, 1, 1]}, r"class_labels: classes are integers \(-1 where unknown\), got \[0\.0, 1\.7"),
        ({"do": {}, "classes": 3, "class_labels": torch.zeros(2, 2)}, r"class_labels: expected 4 values \(one per image\), got shape \(2, 2\)"),
        ({"do": {}, "classes": 3, "class_labels": ["a", "b", "c", "d"]}, "class_labels: .* is not a sequence of integers"),
        ({"do": {"a": 1.0}, "label_std": [0.5, 0.0, 2.0]}, r"label_std: values must be > 0, got \[0\.5, 0\.0, 2\.0\]"),
        ({"do": {"a": 1.0}, "label_std": [0.5, 4.0]}, r"label_std: expected 3 finite values \(one per variable of \['a', 'b', 'c'\]\)"),
        ({"do": {"a": 1.0}, "label_mean": 2.0}, r"label_mean: expected 3 finite values"),
        ({"do": {"a": 1.0}, "label_mean": [2.0, float("nan"), 0.0]}, r"label_mean: expected 3 finite values"),
        ({"do": {}, "w": "2"}, r"guidance w must be a finite number, got '2'"),
        ({"do": {}, "start": "0.5"}, r"start must lie in \(0, 1\]"),
    ],
)
def test_bad_input_is_refused_before_any_sampling(kwargs, message, monkeypatch):
    def no_sampling(*args, **kw):
        raise AssertionError("sampling started before validation")

    monkeypatch.setattr(CausalDiffAE, "eps", no_sampling)  # every counterfactual calls it, in abduction or decoding
    classes = kwargs.pop("classes", 0)
    model = tiny(num_classes=classes) if classes else tiny()
    do = kwargs.pop("do")
    if classes:
        kwargs.setdefault("class_labels", [0, 1, 2, 0])
    x = kwargs.pop("images", images())
    with pytest.raises(CounterfactualError, match=message):
        counterfactual(model, x, do, **{"steps": 2, **kwargs})


def test_the_three_steps_check_their_input_as_the_one_call_does():
    from causaldiffae.counterfactual import abduct, decode_interventions, intervene

    model, x = tiny(), images()
    mean, std = np.zeros(3), np.ones(3)
    for kwargs, message in [({"abduction": "nope"}, "unknown abduction"), ({"spacing": "quad"}, "unknown timestep spacing"), ({"steps": 1}, "steps must be")]:
        with pytest.raises(CounterfactualError, match=message):
            abduct(model, x, **{"steps": 2, **kwargs})
    abd = abduct(model, x, steps=2, generator=torch.Generator().manual_seed(0))
    with pytest.raises(CounterfactualError, match="cannot intervene on 'aa'"):  # used to return z unchanged
        intervene(model, abd, {"aa": np.full(4, 1.0)}, label_mean=mean, label_std=std)
    with pytest.raises(CounterfactualError, match="label_std: expected 3 finite values"):
        intervene(model, abd, {"a": 1.0}, label_mean=mean, label_std=np.ones(2))
    with pytest.raises(CounterfactualError, match="unknown mode 'sett'"):
        intervene(model, abd, {"a": 1.0}, label_mean=mean, label_std=std, mode="sett")
    with pytest.raises(CounterfactualError, match="unknown guidance reference 'factul'"):
        decode_interventions(model, abd, [{"a": 1.0}], label_mean=mean, label_std=std, guidance="factul")
    z_cf, _ = intervene(model, abd, {"a": 1.0}, label_mean=mean, label_std=std)  # a scalar, as counterfactual() takes
    (images_cf, z_grid, _), = decode_interventions(model, abd, [{"a": 1.0}], label_mean=mean, label_std=std)
    torch.testing.assert_close(z_cf, z_grid)
    assert images_cf.shape == x.shape


def test_images_may_be_a_numpy_array_or_a_nested_list():
    x = images()
    outs = [counterfactual(tiny(), v, {"a": 2.0}, steps=2, generator=torch.Generator().manual_seed(0)).images for v in (x, x.numpy(), x.tolist())]
    torch.testing.assert_close(outs[0], outs[1])
    torch.testing.assert_close(outs[0], outs[2])


@pytest.fixture(scope="module")
def trained():
    """A tiny model trained briefly on 8x8 blobs, and 8 blobs it did not see: enough for its eps net to be a smooth denoiser."""
    model = tiny(graph=CausalGraph.parse("a -> b"), block=2, seed=1).train()
    model.set_label_stats(np.zeros(2), np.ones(2))
    gen = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.arange(8.0), torch.arange(8.0), indexing="ij")
    centres = torch.rand(136, 2, generator=gen) * 4 + 2  # 128 to train on, 8 held out to test with
    radius = torch.rand(136, generator=gen) * 1.5 + 1.0
    dist = ((yy - centres[:, 0, None, None]) ** 2 + (xx - centres[:, 1, None, None]) ** 2).sqrt()
    x = (torch.sigmoid(4 * (radius[:, None, None] - dist)) * 2 - 1).unsqueeze(1)
    labels = torch.stack([radius - 1.75, centres[:, 0] - 4], dim=1)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for step in range(60):
        idx = torch.randint(0, 128, (32,), generator=gen)
        loss = model.loss({"image": x[idx], "labels": labels[idx]}, kl_scale=0.1, generator=gen)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval(), x[128:]


def test_inversion_reconstructs_better_than_stochastic_abduction(trained):
    model, x = trained
    inv = counterfactual(model, x, {}, steps=20, abduction="inversion").images
    sto = counterfactual(model, x, {}, steps=20, abduction="stochastic", generator=torch.Generator().manual_seed(0)).images
    err_inv = (inv - x).abs().mean().item()
    err_sto = (sto - x).abs().mean().item()
    assert err_inv < 0.5 * err_sto, (err_inv, err_sto)
    assert err_inv < 0.03, err_inv  # refined inversion: 0.011; without the refinement passes 0.07


def test_factual_guidance_needs_no_null_condition_and_keeps_null_interventions_exact(trained):
    """Guiding away from the factual latent amplifies only what the intervention changes."""
    model, x = trained
    assert not model.has_null_condition
    opts = {"steps": 10, "abduction": "inversion", "guidance": "factual"}
    plain = counterfactual(model, x, {}, **opts).images
    strong = counterfactual(model, x, {}, w=3.0, **opts).images
    torch.testing.assert_close(strong, plain, atol=1e-5, rtol=0)
    a1 = counterfactual(model, x, {"a": 0.3}, **opts).images
    a3 = counterfactual(model, x, {"a": 0.3}, w=3.0, **opts).images
    assert (a3 - plain).abs().mean() > 1.5 * (a1 - plain).abs().mean()  # measured 0.64 vs 0.36 (pixels saturate at w = 3)


def _sampled_reconstruction(model, abd):
    """The sampler run on the abduction's own condition (``decode_interventions`` returns the image without it)."""
    return cf.decode(model, abd.x_T, abd.z, abd.timesteps, class_labels=abd.class_labels, residuals=abd.residuals)


def test_ddpm_abduction_reconstructs_exactly_and_still_edits(trained):
    model, x = trained
    gen = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    rec = _sampled_reconstruction(model, abduct(model, x, steps=10, abduction="ddpm", generator=gen()))
    torch.testing.assert_close(rec, x.clamp(-1, 1), atol=1e-4, rtol=0)
    edit = counterfactual(model, x, {"a": 1.5}, steps=10, abduction="ddpm", generator=gen()).images
    assert (edit - rec).abs().mean() > 0.02


def test_a_later_start_abducts_from_a_partly_noised_image_and_stays_exact(trained):
    model, x = trained
    gen = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    abd = cf.abduct(model, x, steps=10, start=0.6, generator=gen())
    total = cf.num_train_timesteps(model)
    assert len(abd.timesteps) == 10 and int(abd.timesteps[0]) == (int(total * 0.6) // 10) * 9
    rec = _sampled_reconstruction(model, cf.abduct(model, x, steps=10, start=0.6, generator=gen()))
    torch.testing.assert_close(rec, x.clamp(-1, 1), atol=1e-4, rtol=0)
    full = counterfactual(model, x, {"a": 1.5}, steps=10, generator=gen()).images
    late = counterfactual(model, x, {"a": 1.5}, steps=10, start=0.6, generator=gen()).images
    # less noise to start from: the edit keeps more of the image, but still edits
    assert 0.01 < (late - rec).abs().mean() < (full - rec).abs().mean()


def test_quadratic_spacing_abducts_on_its_own_levels_and_stays_exact(trained):
    model, x = trained
    gen = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    abd = cf.abduct(model, x, steps=10, spacing="quadratic", generator=gen())
    assert torch.equal(abd.timesteps, ddim_timesteps(cf.num_train_timesteps(model), 10, spacing="quadratic"))
    rec = _sampled_reconstruction(model, cf.abduct(model, x, steps=10, spacing="quadratic", generator=gen()))
    torch.testing.assert_close(rec, x.clamp(-1, 1), atol=1e-4, rtol=0)
    quad = counterfactual(model, x, {"a": 1.5}, steps=10, spacing="quadratic", generator=gen()).images
    uniform = counterfactual(model, x, {"a": 1.5}, steps=10, generator=gen()).images
    assert (quad - rec).abs().mean() > 0.02 and not torch.allclose(quad, uniform, atol=1e-3)


def _one_column(model, abd, do, w=1.0, guidance="null"):
    """The reference: one intervention decoded on its own with the low-level steps."""
    z_cf, cls = intervene(model, abd, do, label_mean=MEAN, label_std=STD)
    reference = model.condition(abd.z, class_labels=abd.class_labels) if guidance == "factual" and w != 1.0 else None
    return cf.decode(model, abd.x_T, z_cf, abd.timesteps, class_labels=cls, w=w, reference=reference,
                     clip_x0=abd.abduction == "stochastic", residuals=abd.residuals)


@pytest.mark.parametrize("abduction", cf.ABDUCTIONS)
@pytest.mark.parametrize("w, guidance", [(1.0, "null"), (2.0, "null"), (2.0, "factual")])
def test_columns_decoded_together_equal_columns_decoded_alone(abduction, w, guidance):
    model = tiny(num_classes=3, cond_drop=0.1)
    abd = abduct(model, images(), steps=3, abduction=abduction, class_labels=[0, 1, 2, 0], generator=torch.Generator().manual_seed(0))
    dos = [{}, {"a": np.full(4, 3.0)}, {"c": np.full(4, -2.0), "a": np.full(4, 1.0)}, {"digit": np.full(4, 2.0)}]
    together = cf.decode_interventions(model, abd, dos, label_mean=MEAN, label_std=STD, w=w, guidance=guidance)
    assert len(together) == len(dos)
    for do, (images_, z_cf, cls) in zip(dos, together):
        # float32 batches of 16 and of 4 round differently (1e-5 at one thread); a stacking mistake is of order 0.1
        torch.testing.assert_close(images_, _one_column(model, abd, do, w, guidance), atol=1e-4, rtol=0)
        assert torch.equal(z_cf, intervene(model, abd, do, label_mean=MEAN, label_std=STD)[0])
    assert together[3][2].tolist() == [2, 2, 2, 2] and together[1][2].tolist() == [0, 1, 2, 0]


def test_a_column_that_would_retrace_a_ddpm_abduction_is_its_image_without_decoding(monkeypatch):
    model = tiny(num_classes=3, cond_drop=0.1)
    abd = abduct(model, images(), steps=3, class_labels=[0, 1, 2, 0], generator=torch.Generator().manual_seed(0))
    passes = []
    eps = model.eps
    monkeypatch.setattr(model, "eps", lambda *a: passes.append(len(a[0])) or eps(*a))
    same = [{}, {"digit": np.array([0.0, 1.0, 2.0, 0.0])}]  # nothing set; the classes they have
    for w, guidance in ((1.0, "null"), (2.0, "factual")):
        for images_, z_cf, cls in cf.decode_interventions(model, abd, same, label_mean=MEAN, label_std=STD, w=w, guidance=guidance):
            assert torch.equal(images_, abd.x0) and torch.equal(z_cf, abd.z) and cls.tolist() == [0, 1, 2, 0]
    edits = [{"a": np.full(4, 3.0)}, {"digit": np.full(4, 1.0)}]  # at w = 0 from the factual reference, any edit is the reference
    for images_, _, _ in cf.decode_interventions(model, abd, edits, label_mean=MEAN, label_std=STD, w=0.0, guidance="factual"):
        assert torch.equal(images_, abd.x0)
    assert passes == []
    # what running the sampler returns (test_columns_decoded_together_equal_columns_decoded_alone compares every column)
    torch.testing.assert_close(_one_column(model, abd, {}), abd.x0, atol=1e-5, rtol=0)
    torch.testing.assert_close(_one_column(model, abd, edits[0], w=0.0, guidance="factual"), abd.x0, atol=1e-5, rtol=0)
    passes.clear()
    for w, guidance in ((2.0, "null"), (1.0, "null")):  # guided from the null condition: another path; a new class: another condition
        dos = [{}] if guidance == "null" and w != 1.0 else [{"digit": np.full(4, 1.0)}]
        cf.decode_interventions(model, abd, dos, label_mean=MEAN, label_std=STD, w=w, guidance=guidance)
    assert passes == [8] * 3 + [4] * 3  # each decoded: 3 steps, the guided one on a doubled batch
    inverted = abduct(model, images(), steps=3, abduction="inversion", class_labels=[0, 1, 2, 0])
    passes.clear()
    cf.decode_interventions(model, inverted, [{}], label_mean=MEAN, label_std=STD)
    assert passes == [4] * 3  # DDIM inversion's null intervention is a real round trip, decoded


def test_columns_are_batched_up_to_max_batch(monkeypatch):
    model = tiny(num_classes=3, cond_drop=0.1)
    abd = abduct(model, images(), steps=2, class_labels=[0, 1, 2, 0], generator=torch.Generator().manual_seed(0))
    sizes = []
    decode = cf.decode
    monkeypatch.setattr(cf, "decode", lambda model, x_T, *a, **k: sizes.append(len(x_T)) or decode(model, x_T, *a, **k))
    dos = [{"a": np.full(4, v)} for v in (1.0, 2.0, 3.0)]
    cf.decode_interventions(model, abd, dos, label_mean=MEAN, label_std=STD)
    cf.decode_interventions(model, abd, dos, label_mean=MEAN, label_std=STD, max_batch=8)
    cf.decode_interventions(model, abd, dos, label_mean=MEAN, label_std=STD, max_batch=3)  # a column of 4 is one call
    assert sizes == [12, 8, 4, 4, 4, 4]


def test_a_class_conditional_model_needs_one_class_per_image():
    model = tiny(num_classes=3, cond_drop=0.1)
    with pytest.raises(CounterfactualError, match="class-conditional: pass class_labels"):
        abduct(model, images(), steps=2)
    with pytest.raises(CounterfactualError, match="class_labels: expected 4 values"):
        abduct(model, images(), steps=2, class_labels=[0, 1])
    unknown = abduct(model, images(), steps=2, class_labels=[-1] * 4, generator=torch.Generator().manual_seed(0))
    mixed = [{}, {"digit": np.full(4, 1.0)}, {"a": np.full(4, 3.0)}]
    for do, (images_, _, _) in zip(mixed, cf.decode_interventions(model, unknown, mixed, label_mean=MEAN, label_std=STD)):
        torch.testing.assert_close(images_, _one_column(model, unknown, do), atol=1e-5, rtol=0)


def test_model_counterfactual_fn_shows_a_bar_only_for_calls_of_more_than_one_batch(progress_bars):
    from causaldiffae.evaluation.metrics import model_counterfactual_fn

    cf_fn = model_counterfactual_fn(tiny(), steps=2, batch_size=2, progress=progress_bars)
    labels = np.tile(MEAN, (5, 1))
    cf_fn(images(5), {}, labels)  # three batches: one tick each
    cf_fn(images(2), {}, labels[:2])  # one batch: no bar
    assert progress_bars.bars == [("counterfactuals", 3, False)]

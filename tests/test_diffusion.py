import pytest
import torch

from causaldiffae.config import DiffusionConfig
from causaldiffae.diffusion import ddim_invert, ddim_sample, ddim_timesteps, ddpm_decode, ddpm_invert, guided, make_scheduler, q_sample, to_eps


def _alphas(T: int = 1000) -> torch.Tensor:
    return make_scheduler(DiffusionConfig(num_train_timesteps=T)).alphas_cumprod


def test_scheduler_is_linear_1e4_to_002():
    s = make_scheduler(DiffusionConfig(num_train_timesteps=1000))
    assert s.betas[0].item() == torch.tensor(1e-4).item()
    assert abs(s.betas[-1].item() - 0.02) < 1e-7
    assert torch.allclose(s.betas.diff(), s.betas.diff()[0].expand(999), atol=1e-9)


def test_the_cosine_schedule_adds_less_noise_near_the_clean_image_and_ends_as_noisy():
    linear, cosine = (make_scheduler(DiffusionConfig(beta_schedule=s)).alphas_cumprod for s in ("linear", "cosine"))
    assert cosine[100] > linear[100] + 0.05 and cosine[500] > linear[500] + 0.3  # more signal kept at every low and middle level
    assert cosine[-1] < 1e-4 and linear[-1] < 1e-4  # both end at (almost) pure noise
    assert bool(torch.all(cosine.diff() < 0))


def test_a_velocity_converts_to_the_noise_it_stands_for():
    s = make_scheduler(DiffusionConfig(prediction_type="v_prediction"))
    assert s.config.prediction_type == "v_prediction"
    g = torch.Generator().manual_seed(0)
    x0, noise = torch.rand(5, 1, 4, 4, generator=g) * 2 - 1, torch.randn(5, 1, 4, 4, generator=g)
    t = torch.tensor([0, 10, 500, 900, 999])
    x_t, v = s.add_noise(x0, noise, t), s.get_velocity(x0, noise, t)
    torch.testing.assert_close(to_eps(v, x_t, s.alphas_cumprod[t], "v_prediction"), noise, atol=1e-5, rtol=1e-5)
    assert to_eps(noise, x_t, s.alphas_cumprod[t], "epsilon") is noise
    with pytest.raises(ValueError, match="unknown prediction_type 'sample'"):
        to_eps(v, x_t, s.alphas_cumprod[t], "sample")


def test_ddim_timesteps_match_ddim250_spacing():
    ts = ddim_timesteps(1000, 250)
    assert len(ts) == 250 and ts[0] == 996 and ts[-1] == 0
    assert torch.all(ts.diff() == -4)
    late = ddim_timesteps(1000, 20, start=0.6)
    assert len(late) == 20 and late[0] == 570 and late[-1] == 0 and torch.all(late.diff() == -30)
    with pytest.raises(ValueError, match="start=0.01"):
        ddim_timesteps(1000, 20, start=0.01)


@pytest.mark.parametrize("start", [1.0, 0.6])
def test_quadratic_spacing_shares_the_top_level_and_crowds_the_low_noise_end(start):
    for steps in (2, 3, 20, 100, 250, int(1000 * start)):
        quad, uniform = ddim_timesteps(1000, steps, start, "quadratic"), ddim_timesteps(1000, steps, start)
        assert len(quad) == steps and quad[0] == uniform[0] and quad[-1] == 0
        assert torch.all(quad.diff() < 0), steps  # distinct, descending, even where rounding would merge levels
        assert torch.all(quad.diff().abs().flip(0).diff() >= -1), steps  # gaps widen towards the noise (up to rounding)
    assert ddim_timesteps(1000, 20, spacing="quadratic")[-5:].tolist() == [42, 24, 11, 3, 0]
    with pytest.raises(ValueError, match="steps must be >= 2"):
        ddim_timesteps(1000, 1, spacing="quadratic")
    with pytest.raises(ValueError, match="unknown timestep spacing 'cosine'"):
        ddim_timesteps(1000, 20, spacing="cosine")


def test_sampling_a_point_mass_reaches_it():
    """With the exact eps of a point mass x*, DDIM lands on x* from any noise."""
    a = _alphas()
    target = torch.linspace(-0.8, 0.8, 16).view(1, 1, 4, 4)

    def eps_fn(x, t):
        at = a[t].view(-1, 1, 1, 1)
        return (x - at.sqrt() * target) / (1 - at).sqrt()

    x = ddim_sample(eps_fn, torch.randn(3, 1, 4, 4), ddim_timesteps(1000, 20), a)
    torch.testing.assert_close(x, target.expand(3, -1, -1, -1), atol=1e-5, rtol=0)


def test_inversion_then_sampling_reconstructs():
    """Data N(0, s^2) has the exact eps*(x, t) = sqrt(1 - a) x / (a s^2 + 1 - a); invert, decode, compare."""
    a = _alphas()

    def eps_fn(x, t):
        at = a[t].view(-1, 1, 1, 1)
        return (1 - at).sqrt() * x / (at * 0.25 + 1 - at)

    x0 = torch.randn(4, 1, 6, 6) * 0.5
    errors = []
    for steps in (25, 250):
        ts = ddim_timesteps(1000, steps)
        x_T = ddim_invert(eps_fn, x0, ts, a)
        assert x_T.std() > 1.5 * x0.std()  # really noised
        errors.append((ddim_sample(eps_fn, x_T, ts, a, clip_x0=False) - x0).abs().max().item())
    assert errors[1] < 0.025 and errors[1] < errors[0] / 5  # first-order: error shrinks with the step size


def test_fixed_point_refinement_makes_few_step_inversion_exact():
    """Refined inversion solves for the x_t the decoder starts from, so decoding retraces it at 25 steps."""
    a = _alphas()

    def eps_fn(x, t):
        at = a[t].view(-1, 1, 1, 1)
        return (1 - at).sqrt() * x / (at * 0.25 + 1 - at)

    x0 = torch.randn(4, 1, 6, 6, generator=torch.Generator().manual_seed(0)) * 0.5
    ts = ddim_timesteps(1000, 25)
    errors = [(ddim_sample(eps_fn, ddim_invert(eps_fn, x0, ts, a, refine=r), ts, a, clip_x0=False) - x0).abs().max().item() for r in (0, 3)]
    assert errors[1] < errors[0] / 100 and errors[1] < 2e-3, errors  # measured 0.18 and 0.0008


def test_stochastic_ddim_is_seeded():
    a = _alphas()
    eps_fn = lambda x, t: torch.zeros_like(x)  # noqa: E731
    run = lambda seed, eta=1.0: ddim_sample(eps_fn, torch.ones(2, 1, 4, 4), ddim_timesteps(1000, 5), a, eta=eta,  # noqa: E731
                                           generator=torch.Generator().manual_seed(seed))
    torch.testing.assert_close(run(3), run(3))
    assert not torch.allclose(run(3), run(4)) and not torch.allclose(run(3), run(3, eta=0.0))  # eta=1 draws noise


def test_clipping_keeps_the_predicted_clean_image_in_range():
    """With clip_x0 a sampler that predicts x0 = 3 lands on 1, the data range's edge; without it, beyond."""
    a = _alphas()
    steps = ddim_timesteps(1000, 5)
    eps_fn = lambda x, t: (x - a[t].sqrt().view(-1, 1, 1, 1) * 3.0) / (1 - a[t]).sqrt().view(-1, 1, 1, 1)  # noqa: E731
    x = torch.randn(2, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(ddim_sample(eps_fn, x, steps, a, clip_x0=True), torch.ones(2, 1, 4, 4), atol=1e-4, rtol=0)
    assert ddim_sample(eps_fn, x, steps, a, clip_x0=False).min() > 2.9


def test_guidance_mixes_conditional_and_null():
    batches = []

    def eps_cond(x, t, cond):
        batches.append(len(x))
        return x * 0 + cond.sum(1).view(-1, 1, 1, 1)

    x, t = torch.zeros(2, 1, 2, 2), torch.zeros(2, dtype=torch.long)
    cond, null = torch.full((1, 3), 1.0), torch.full((1, 3), 0.5)
    assert torch.all(guided(eps_cond, cond, null, 1.0)(x, t) == 3.0)
    assert torch.all(guided(eps_cond, cond, null, 2.5)(x, t) == 2.5 * 3.0 + (1 - 2.5) * 1.5)
    assert torch.all(guided(eps_cond, cond, null, 0.0)(x, t) == 1.5)
    assert batches == [2, 4, 2]  # one pass at w = 1 and at w = 0, both branches in one doubled batch otherwise


def test_ddpm_noise_abduction_is_exact_and_carries_the_individual():
    """Decoding the abducted noise with the same model returns x0; another model still lands near it."""
    a = _alphas()

    def eps_fn(x, t, s2=0.25):
        at = a[t].view(-1, 1, 1, 1)
        return (1 - at).sqrt() * x / (at * s2 + 1 - at)

    x0 = torch.randn(4, 1, 6, 6, generator=torch.Generator().manual_seed(0)) * 0.5
    ts = ddim_timesteps(1000, 10)
    x_T, residuals = ddpm_invert(eps_fn, x0, ts, a, generator=torch.Generator().manual_seed(1))
    assert len(residuals) == 10 and x_T.std() > 1.5 * x0.std()
    torch.testing.assert_close(ddpm_decode(eps_fn, x_T, residuals, ts, a), x0, atol=1e-5, rtol=0)
    other = ddpm_decode(lambda x, t: eps_fn(x, t, s2=0.5), x_T, residuals, ts, a)
    fresh = ddpm_decode(lambda x, t: eps_fn(x, t, s2=0.5), x_T, [torch.randn_like(r) * r.std() for r in residuals], ts, a)
    assert 0 < (other - x0).abs().mean() < 0.5 * (fresh - x0).abs().mean()


def test_q_sample_has_the_forward_marginal():
    a = _alphas()
    x = q_sample(torch.full((20000, 1, 1, 1), 0.7), 500, a, torch.Generator().manual_seed(0))
    assert abs(x.mean().item() - a[500].sqrt().item() * 0.7) < 0.02
    assert abs(x.var().item() - (1 - a[500]).item()) < 0.02


def test_eta_sets_the_share_of_fresh_noise_in_a_step():
    """A point mass at 0 (exact eps): corr(x_T, x_t')^2 = 1 - sigma^2 / (1 - a'), sigma^2 = eta^2 x the DDPM posterior variance."""
    a = _alphas().double()
    seen = {}

    def eps_fn(x, t):
        seen.setdefault(int(t[0]), x.clone())
        return x / (1 - a[t].float()).sqrt().view(-1, 1, 1, 1)

    x_T = (1 - a[800]).sqrt().float() * torch.randn(20000, 1, 1, 1, generator=torch.Generator().manual_seed(0))
    ddim_sample(eps_fn, x_T, torch.tensor([800, 300]), a.float(), eta=0.5, clip_x0=False, generator=torch.Generator().manual_seed(1))
    s2 = 0.25 * (1 - a[300]) / (1 - a[800]) * (1 - a[800] / a[300])
    corr = torch.corrcoef(torch.stack([x_T.flatten(), seen[300].flatten()]).double())[0, 1]
    assert abs(corr.item() ** 2 - (1 - s2 / (1 - a[300])).item()) < 0.01


def test_ddpm_abduction_noises_each_level_independently():
    """Exact eps of a point mass: a residual is sqrt(1-a') n' - sqrt(1-a'-s2) n with n, n' independent, so its
    variance is the sum of both; shared noise between levels (or a wrong noising scale) would change it."""
    a = _alphas()
    eps_fn = lambda x, t: x / (1 - a[t]).sqrt().view(-1, 1, 1, 1)  # noqa: E731
    _, res = ddpm_invert(eps_fn, torch.zeros(4000, 1, 1, 1), torch.tensor([800, 300]), a, generator=torch.Generator().manual_seed(0))
    an, af = a[300].double(), a[800].double()
    s2 = (1 - an) / (1 - af) * (1 - af / an)
    want = ((1 - an) + (1 - an - s2)).item()
    assert abs(res[0].double().var().item() - want) < 0.05 * want

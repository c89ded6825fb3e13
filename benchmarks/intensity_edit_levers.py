"""Six inference levers on the do(intensity) thickness drift, none of which closes it.

    python benchmarks/intensity_edit_levers.py --data data/morphomnist            # 100 digits, all six, ~10 min
    python benchmarks/intensity_edit_levers.py --data data/morphomnist --n 500 --only eta
    python benchmarks/intensity_edit_levers.py --data data/morphomnist --n 200 --only eta --etas 1 --split train
    python benchmarks/intensity_edit_levers.py --data data/morphomnist --only draws --draws 16   # ~4 min
    python benchmarks/intensity_edit_levers.py --data data/morphomnist --only guide             # ~3 min
    python benchmarks/intensity_edit_levers.py --data data/morphomnist --n 500 --only tone      # ~3 min

On ``causaldiffae evaluate``'s test digits and intervention values (seed 0), morphometric MAE
against the SCM's counterfactual labels:

1. ``eta``: the variance of the ``ddpm`` abduction's sampler (1 = the DDPM posterior, the
   default), for do(thickness) and do(intensity).
2. ``path``: do(intensity) as ``k`` equal steps, re-abducting the noise after each from the image
   just decoded and the latent it was decoded with. If the drift were a random error per edit,
   small steps would add up to less than one large one.
3. ``delta``: an optimisation edit in the manner of delta denoising score: from the digit, move
   ``x'`` by ``lr * ([x0(x'_t, z') - x0(x_t, z)] - (x' - x))`` with ``x'_t`` and ``x_t`` noised with
   the same ``t`` and noise, so the model's errors common to both cancel.
4. ``draws``: ``K`` abductions of each digit (the ``ddpm`` abduction's forward noisings are random),
   each edited. Splits the drift into the part each digit keeps on every draw (the mean signed
   error over the draws) and the part that changes from draw to draw (their spread). Keeping one of
   the K is scored two ways: the draw whose re-encoded latent lies nearest the intervened one (a
   choice the model can make), and the best draw by the answer itself (a bound, not a method).
5. ``guide``: regressor guidance on the variable do(intensity) must keep. At each decoding step the
   predicted clean digit takes ``--guide-iters`` gradient steps of size ``s`` towards a target
   reading of the shipped thickness predictor, and the step continues from it. Two targets: the
   unedited digit's reading (a method; the predictor reads brightness into thickness, so it asks
   for a thickness change), and the true counterfactual's reading (a bound: it knows the answer).
   Reports how close the edit's reading came, beside the measurement.
6. ``tone``: the edit kept only as a brightness change. Each digit's edit is replaced by its nearest
   monotone tone map of the digit, ``g(x)`` for an increasing ``g`` (isotonic regression of the edited
   pixels on the digit's), whose strokes are the digit's own level sets: every edge moved outwards in
   one place and inwards in another is dropped. The same map of the true counterfactual is a bound on
   any edit of that form.
"""

from __future__ import annotations

import functools
import time

import numpy as np
import torch
from evaluate_draw import arguments, evaluate_draw

from causaldiffae.counterfactual import block_values, intervene
from causaldiffae.data.base import pixels_tensor
from causaldiffae.data.morphomnist import source_digits
from causaldiffae.demo import WEIGHTS
from causaldiffae.diffusion import EpsFn, ddpm_decode, ddpm_invert, eps_from_x0, x0_from_eps
from causaldiffae.evaluation.metrics import abduction_generator
from causaldiffae.evaluation.oracle import morphomnist_true_counterfactuals
from causaldiffae.evaluation.predictors import load_predictors

LEVERS = ("eta", "path", "delta", "draws", "guide", "tone")


def main() -> None:
    parser = arguments(__doc__.splitlines()[0])
    parser.add_argument("--only", choices=LEVERS, action="append", help="run only these levers (repeatable)")
    parser.add_argument("--etas", default="1,1.5,2")
    parser.add_argument("--paths", default="1,3,6")
    parser.add_argument("--delta-iters", type=int, default=240)
    parser.add_argument("--delta-lr", type=float, default=0.05)
    parser.add_argument("--draws", type=int, default=8, help="abductions per digit for the draws lever")
    parser.add_argument("--guide-scales", default="0.1,0.3,1", help="x0 step sizes of the guide lever")
    parser.add_argument("--guide-iters", type=int, default=10, help="gradient steps on the predicted x0 per decoding step")
    parser.add_argument("--predictors", default=str(WEIGHTS / "predictors"), help="predictors for the guide lever")
    args = parser.parse_args()
    levers = args.only or LEVERS

    d = evaluate_draw(args)
    model, ds, x, labels, values, abd = d.model, d.data, d.x, d.labels, d.values, d.abduction
    mean, std = d.label_mean, d.label_std
    measure = d.measure
    alphas = model.alphas_cumprod
    variables = ("thickness", "intensity")
    col = {v: ds.graph.index(v) for v in variables}
    do = {v: {v: values[:, col[v]]} for v in variables}
    truth = {v: d.scm.counterfactual(labels, do[v]) for v in variables}

    def condition(z: torch.Tensor) -> torch.Tensor:
        return model.condition(z, class_labels=abd.class_labels)

    def errors(images: torch.Tensor, target: np.ndarray) -> str:
        m = measure(images)
        thickness, intensity = (np.abs(m[v] - target[:, col[v]]).mean() for v in variables)
        return f"{thickness:.4f} | {intensity:.2f}"

    def score(variable: str, images: torch.Tensor) -> str:
        return errors(images, truth[variable])

    def invert(z: torch.Tensor, images: torch.Tensor, eta: float, generator: torch.Generator) -> tuple[torch.Tensor, list[torch.Tensor]]:
        c = condition(z)
        with torch.no_grad():
            return ddpm_invert(lambda xt, t: model.eps(xt, t, c), images, abd.timesteps, alphas, generator=generator, eta=eta)

    def decode(z: torch.Tensor, x_T: torch.Tensor, residuals: list[torch.Tensor], eta: float) -> torch.Tensor:
        c = condition(z)
        with torch.no_grad():
            return ddpm_decode(lambda xt, t: model.eps(xt, t, c), x_T, residuals, abd.timesteps, alphas, eta=eta).clamp(-1, 1)

    z_cf = {v: intervene(model, abd, do[v], label_mean=mean, label_std=std)[0] for v in variables}

    @functools.cache
    def intensity_edit() -> torch.Tensor:
        """The plain do(intensity) edit from the draw's abduction, which the guide and tone levers both start from."""
        with torch.no_grad():
            return decode(z_cf["intensity"], abd.x_T, d.residuals, 1.0)

    @functools.cache
    def true_intensity_edit() -> torch.Tensor:
        """The true do(intensity) counterfactuals in [-1, 1], redrawn once by the dataset's generator for the levers that bound by them."""
        sources = source_digits(args.data, args.split)[d.idx]
        drawn, _ = morphomnist_true_counterfactuals(sources, labels, values, d.scm)["intensity"]
        return pixels_tensor(drawn)
    print(f"{len(x)} {args.split} digits, {d.steps} DDIM steps ({d.spacing} spacing), seed {args.seed}; MAE thickness | intensity")
    print(f"unedited digits against their labels: {errors(x, labels)}")
    if "eta" in levers:
        print("\neta | do(thickness): thickness | intensity | do(intensity): thickness | intensity")
        for eta in (float(e) for e in args.etas.split(",")):
            x_T, residuals = invert(abd.z, x, eta, abduction_generator(args.seed, 1))
            row = [score(v, decode(z_cf[v], x_T, residuals, eta)) for v in variables]
            print(f"{eta:g} | " + " | ".join(row))

    if "path" in levers:
        own, target = block_values(model, abd.z, mean, std)[:, col["intensity"]], values[:, col["intensity"]]
        print("\ndo(intensity) in k steps | thickness | intensity | seconds")
        for k in (int(s) for s in args.paths.split(",")):
            t0, images, z_prev = time.perf_counter(), x, abd.z
            generator = abduction_generator(args.seed, 1)
            for i in range(1, k + 1):
                z_next = intervene(model, abd, {"intensity": own + (target - own) * i / k}, label_mean=mean, label_std=std)[0]
                images, z_prev = decode(z_next, *invert(z_prev, images, 1.0, generator), 1.0), z_next
                images = ((images + 1) * 127.5).round() / 127.5 - 1  # each step's result as a dataset would store it
            print(f"{k} | {score('intensity', images)} | {time.perf_counter() - t0:.0f}")

    if "delta" in levers:
        print(f"\ndelta edit, do(intensity), lr {args.delta_lr:g}, t in [50, 950] | thickness | intensity")
        generator = torch.Generator().manual_seed(args.seed)
        c_f, c_cf = condition(abd.z), condition(z_cf["intensity"])
        edited = x.clone()
        with torch.no_grad():
            for it in range(1, args.delta_iters + 1):
                t = int(torch.randint(50, 951, (1,), generator=generator))
                a = alphas[t].to(torch.float32)
                noise = torch.randn(x.shape, generator=generator)
                steps = torch.full((len(x),), t, dtype=torch.long)

                def x0(image: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
                    noisy = a.sqrt() * image + (1 - a).sqrt() * noise
                    return x0_from_eps(noisy, model.eps(noisy, steps, cond), a)

                edited = (edited + args.delta_lr * (x0(edited, c_cf) - x0(x, c_f) - (edited - x))).clamp(-1, 1)
                if it % max(1, args.delta_iters // 3) == 0 or it == args.delta_iters:
                    print(f"after {it} | {score('intensity', edited)}")

    if "draws" in levers:
        k = args.draws
        print(f"\n{k} abductions of each digit, do(intensity) | thickness | intensity")
        target = truth["intensity"]
        drawn_edits: list[torch.Tensor] = []
        latents: list[torch.Tensor] = []
        for i in range(k):
            edited = decode(z_cf["intensity"], *invert(abd.z, x, 1.0, abduction_generator(args.seed, 1 + i)), 1.0)
            if model.encoder is not None:  # a label-conditional run has no encoder to re-read its edits
                with torch.no_grad():
                    latents.append(model.propagate(model.encode(edited)[0]))
            drawn_edits.append(edited)
        m = [measure(image) for image in drawn_edits]
        signed = np.stack([mi["thickness"] - target[:, col["thickness"]] for mi in m])  # (K, B)
        off = np.stack([np.abs(mi["intensity"] - target[:, col["intensity"]]) for mi in m])
        rows = np.arange(len(x))
        best = np.abs(signed).argmin(0)
        print(f"one draw (mean over the {k}) | {np.abs(signed).mean():.4f} | {off.mean():.2f}")
        print(f"kept on every draw: |mean signed error over the draws| | {np.abs(signed.mean(0)).mean():.4f} |")
        print(f"changing between draws: sd over the draws | {signed.std(0).mean():.4f} |")
        if latents:
            nearest = torch.stack([(z - z_cf["intensity"]).square().sum(1) for z in latents]).argmin(0).numpy()
            print(f"the draw whose latent is nearest z' | {np.abs(signed[nearest, rows]).mean():.4f} | {off[nearest, rows].mean():.2f}")
        print(f"the best draw, chosen by the answer (a bound) | {np.abs(signed[best, rows]).mean():.4f} | {off[best, rows].mean():.2f}")

    if "guide" in levers:
        reader = load_predictors(args.predictors, ds).regressors["thickness"].eval().requires_grad_(False)
        with torch.no_grad():
            targets = {"the unedited digit's": reader(x)[:, 0], "the true counterfactual's (a bound)": reader(true_intensity_edit())[:, 0]}
        c = condition(z_cf["intensity"])

        def guided_eps(target: torch.Tensor, s: float) -> EpsFn:
            def eps_fn(xt: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
                with torch.no_grad():
                    eps = model.eps(xt, t, c)
                a = alphas[int(t[0])].to(xt.dtype)
                x0 = x0_from_eps(xt, eps, a).detach()
                for _ in range(args.guide_iters):
                    with torch.enable_grad():
                        x0.requires_grad_(True)
                        (grad,) = torch.autograd.grad(0.5 * (reader(x0)[:, 0] - target).square().sum(), x0)
                    x0 = (x0 - s * grad).detach()
                return eps_from_x0(xt, x0, a)

            return eps_fn

        print(f"\nthickness-predictor guidance, do(intensity), {args.guide_iters} x0 steps per decoding step"
              " | thickness | intensity | |reading - target| (predictor sd)")
        plain = intensity_edit()
        for name, target in targets.items():
            print(f"no guidance, against {name} reading | {score('intensity', plain)} | {(reader(plain)[:, 0] - target).abs().mean():.4f}")
            for s in (float(v) for v in args.guide_scales.split(",")):
                edited = ddpm_decode(guided_eps(target, s), abd.x_T, d.residuals, abd.timesteps, alphas).clamp(-1, 1)
                with torch.no_grad():
                    reading = (reader(edited)[:, 0] - target).abs().mean()
                print(f"towards {name} reading, s {s:g} | {score('intensity', edited)} | {reading:.4f}")

    if "tone" in levers:
        print("\ndo(intensity) kept as a tone map of the digit | thickness | intensity")
        for name, images in (("the model's edit", intensity_edit()), ("the true counterfactual (a bound)", true_intensity_edit())):
            print(f"{name} | {score('intensity', images)}")
            print(f"{name}, as its nearest tone map of the digit | {score('intensity', tone_mapped(x, images))}")


def tone_mapped(x: torch.Tensor, edited: torch.Tensor) -> torch.Tensor:
    """Each of ``edited`` (``(N, 1, H, W)``) as the monotone function of its digit ``x`` nearest it in squared error."""
    from sklearn.isotonic import IsotonicRegression

    out = torch.empty_like(edited)
    for i, (digit, image) in enumerate(zip(x.flatten(1).numpy(), edited.flatten(1).numpy())):
        fitted = IsotonicRegression(increasing=True).fit(digit, image).predict(digit)
        out[i] = torch.from_numpy(fitted.astype(np.float32)).view(edited.shape[1:])
    return out


if __name__ == "__main__":
    from causaldiffae.cli import guarded

    raise SystemExit(guarded(main))

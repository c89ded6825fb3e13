"""The ``ddpm`` abduction's do(intensity) edit with an ideal decoder in place of the model.

    python benchmarks/ideal_decoder.py --data data/morphomnist                  # 100 digits, ~16 min on 2 cores
    python benchmarks/ideal_decoder.py --data data/morphomnist --per-class 100  # a smaller memory, ~4 min

Is the thickness drift under do(intensity) the counterfactual procedure's or the decoder's? The
dataset's generator gives the exact denoiser of a finite set of digits: for a condition (thickness,
intensity), each source digit ``s`` is drawn as ``G(s, thickness, intensity)``, and the posterior
mean of the clean digit given ``x_t`` is their softmax average weighted by
``-|x_t - sqrt(a) G|^2 / (2 (1 - a))``. Such decoders, each over the digit's class:

- *the training sources*: the ideal decoder of the training set, one that fits every training digit
  exactly and knows nothing else (a perfect memoriser);
- *the training sources and the digit's own*: one that also knows the MNIST original this test digit
  was drawn from;
- *local, P x P*: the ideal denoiser under locality alone (the locality machine of Kamb & Ganguli,
  2024): each pixel's clean value is the softmax average of the training sources' pixels at that
  place, weighted by the P x P patch around it, so a stroke edge borrows its response from similar
  edges of other digits rather than from one whole digit.

Each is abducted and edited exactly as the model is (``evaluate``'s 100 digits and intervention
values, its DDIM steps and abduction noise), and the shipped model is scored on the same abductions
beside them. Morphometric MAE against the SCM's counterfactual labels.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from evaluate_draw import arguments, evaluate_draw

from causaldiffae.counterfactual import intervene
from causaldiffae.data import load_dataset
from causaldiffae.data import morphometrics as mm
from causaldiffae.data.morphomnist import source_digits
from causaldiffae.data.parallel import map_progress
from causaldiffae.diffusion import EpsFn, ddpm_decode, ddpm_invert
from causaldiffae.evaluation.metrics import abduction_generator, mae
from causaldiffae.evaluation.oracle import morphomnist_true_counterfactuals


def draw(job: tuple[np.ndarray, float, float]) -> np.ndarray:
    """The source digits redrawn at one (thickness, intensity) by the dataset's generator."""
    sources, thickness, intensity = job
    return np.stack([mm.set_thickness(s, thickness, intensity=intensity) for s in sources])


def memory(banks: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-digit banks as one padded ``(N, M, pixels)`` tensor in ``[-1, 1]`` and its ``(N, M)`` mask."""
    size = max(len(b) for b in banks)
    images = torch.zeros(len(banks), size, banks[0][0].size)
    mask = torch.zeros(len(banks), size, dtype=torch.bool)
    for k, bank in enumerate(banks):
        images[k, : len(bank)] = torch.from_numpy(bank.reshape(len(bank), -1).astype(np.float32) / 127.5 - 1)
        mask[k, : len(bank)] = True
    return images, mask


def ideal_eps(images: torch.Tensor, mask: torch.Tensor, alphas_cumprod: torch.Tensor) -> EpsFn:
    """The exact noise prediction of a uniform mixture of each digit's bank (all rows share one t)."""

    def eps(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        a = alphas_cumprod[int(t[0])].float()
        flat = x_t.reshape(len(x_t), 1, -1).float()
        logits = -(flat - a.sqrt() * images).square().sum(-1) / (2 * (1 - a))
        weights = torch.softmax(logits.masked_fill(~mask, float("-inf")), dim=1)
        x0 = torch.einsum("nm,nmp->np", weights, images).reshape(x_t.shape)
        return ((x_t - a.sqrt() * x0) / (1 - a).sqrt()).to(x_t.dtype)

    return eps


def local_eps(images: torch.Tensor, mask: torch.Tensor, patch: int, alphas_cumprod: torch.Tensor, chunk: int = 25) -> EpsFn:
    """The ideal denoiser under locality: per pixel, a softmax over each digit's bank by the odd ``patch``'s distance."""
    n_digits, size = mask.shape

    def eps(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        a = alphas_cumprod[int(t[0])].float()
        height, width = x_t.shape[-2:]
        x0 = torch.empty(x_t.shape)
        for s in range(0, n_digits, chunk):
            n = len(images[s : s + chunk])
            bank = images[s : s + n].reshape(n, size, height, width)
            sq = (x_t[s : s + n].float() - a.sqrt() * bank).square().reshape(n * size, 1, height, width)
            d2 = F.avg_pool2d(sq, patch, stride=1, padding=patch // 2).reshape(n, size, height, width) * patch**2  # the patch's sum
            logits = (-d2 / (2 * (1 - a))).masked_fill(~mask[s : s + n, :, None, None], float("-inf"))
            x0[s : s + n] = (torch.softmax(logits, dim=1) * bank).sum(1, keepdim=True)
        return ((x_t - a.sqrt() * x0) / (1 - a).sqrt()).to(x_t.dtype)

    return eps


def main() -> None:
    parser = arguments(__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, default=0, help="training sources per digit, drawn from its class (0: all of them)")
    parser.add_argument("--abductions", type=int, default=2, help="abductions of each digit (evaluate's noise for the first)")
    parser.add_argument("--workers", type=int, default=2, help="processes drawing the banks")
    parser.add_argument("--patches", default="1,3", help="odd patch sizes of the local ideal decoders ('' for none)")
    args = parser.parse_args()
    patches = [int(p) for p in args.patches.split(",") if p.strip()]
    if any(p < 1 or p % 2 == 0 for p in patches):
        parser.error(f"--patches {args.patches}: each patch size must be odd and positive, centred on its pixel")

    d = evaluate_draw(args)
    model, ds, x, labels, idx = d.model, d.data, d.x, d.labels, d.idx
    do = {"intensity": d.values[:, ds.graph.index("intensity")]}
    train = load_dataset(args.data, "train", progress=False)
    train_sources, own_sources = source_digits(args.data, "train"), source_digits(args.data, args.split)[idx]
    own_counterfactual, truth = morphomnist_true_counterfactuals(own_sources, labels, d.values, d.scm)["intensity"]
    classes = d.classes
    rng = np.random.default_rng(args.seed)
    members = [np.flatnonzero(train.classes == c) for c in classes]
    if args.per_class:
        members = [rng.choice(m, min(args.per_class, len(m)), replace=False) for m in members]

    jobs = [(train_sources[m], *row) for m, row in zip(members, labels)] + [(train_sources[m], *row) for m, row in zip(members, truth)]
    drawn = map_progress(draw, jobs, workers=args.workers, total=2 * sum(map(len, members)), desc="generator", unit="digit")
    factual, counterfactual = drawn[: len(idx)], drawn[len(idx) :]
    own_factual = np.asarray(ds.images[idx]).reshape(-1, 28, 28)

    measure = d.measure
    alphas, steps = model.alphas_cumprod, d.abduction.timesteps

    def errors(images: torch.Tensor, target: np.ndarray) -> tuple[float, float]:
        m = measure(images)
        return mae(m["thickness"], target[:, 0]), mae(m["intensity"], target[:, 1])

    def edit(factual_eps: EpsFn, counterfactual_eps: EpsFn, call: int) -> torch.Tensor:
        x_T, residuals = ddpm_invert(factual_eps, x, steps, alphas, generator=abduction_generator(args.seed, call))
        return ddpm_decode(counterfactual_eps, x_T, residuals, steps, alphas).clamp(-1, 1)

    z_cf = intervene(model, d.abduction, do, label_mean=d.label_mean, label_std=d.label_std)[0]
    c, c_cf = (model.condition(z, class_labels=d.abduction.class_labels) for z in (d.abduction.z, z_cf))
    factual_memory, counterfactual_memory = memory(factual), memory(counterfactual)
    decoders = {
        "shipped model": (lambda xt, t: model.eps(xt, t, c), lambda xt, t: model.eps(xt, t, c_cf)),
        "ideal, training sources": (ideal_eps(*factual_memory, alphas), ideal_eps(*counterfactual_memory, alphas)),
        "ideal, training sources + the digit's own": (
            ideal_eps(*memory([np.concatenate([b, o[None]]) for b, o in zip(factual, own_factual)]), alphas),
            ideal_eps(*memory([np.concatenate([b, o[None]]) for b, o in zip(counterfactual, own_counterfactual)]), alphas),
        ),
    }
    for patch in patches:
        decoders[f"ideal, local {patch}x{patch}, training sources"] = (
            local_eps(*factual_memory, patch, alphas), local_eps(*counterfactual_memory, patch, alphas))
    sizes = [len(m) for m in members]
    print(f"{len(idx)} test digits, {d.steps} DDIM steps ({d.spacing} spacing), seed {args.seed}; "
          f"{min(sizes)}-{max(sizes)} training sources per digit; do(intensity), MAE per abduction")
    print(f"unedited digits: thickness {errors(x, labels)[0]:.4f}")
    true = torch.from_numpy(own_counterfactual[:, None].astype(np.float32) / 127.5 - 1)
    print("true counterfactual: thickness {:.4f} | intensity {:.2f}".format(*errors(true, truth)))
    print("\ndecoder | thickness | intensity")
    for name, (factual_eps, counterfactual_eps) in decoders.items():
        with torch.no_grad():
            scores = [errors(edit(factual_eps, counterfactual_eps, call), truth) for call in range(1, args.abductions + 1)]
        print(f"{name} | " + " / ".join(f"{s[0]:.4f}" for s in scores) + " | " + " / ".join(f"{s[1]:.2f}" for s in scores))


if __name__ == "__main__":
    from causaldiffae.cli import guarded

    raise SystemExit(guarded(main))

"""Where the thickness drift of a do(intensity) edit comes from: the edit's size and the noise levels.

    python benchmarks/intensity_edit_anatomy.py --data data/morphomnist

On ``causaldiffae evaluate``'s test digits and intervention values (seed 0, default ``ddpm``
abduction, abducted once as ``evaluate`` does), two tables:

1. Edit size. Intensity set ``k`` grey levels away from the value the digit's own latent reads,
   and the measured thickness change from the unedited digit (MAE), beside the true
   counterfactual's change for the full edit ``evaluate`` asks for. A drift that is already large
   for ``k = 1`` is the decoder redrawing the strokes, not the edit's size.
2. Noise levels. The same full edit decoded with the counterfactual condition only above
   timestep ``s`` and the factual one below it: what the low noise levels draw.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from causaldiffae.checkpoint import load_run
from causaldiffae.counterfactual import abduct, block_values, decode_intervention, intervene, label_stats
from causaldiffae.data import load_dataset
from causaldiffae.data.morphomnist import source_digits
from causaldiffae.demo import WEIGHTS
from causaldiffae.diffusion import ddpm_decode
from causaldiffae.evaluation.metrics import abduction_generator, marginal_values, morphometric_reader
from causaldiffae.evaluation.oracle import morphomnist_true_counterfactuals
from causaldiffae.evaluation.predictors import images_tensor

EDIT_SIZES = (1, 3, 10, 30, -10, -30)
SWITCHES = (50, 150, 300, 500)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="a MorphoMNIST folder (causaldiffae data morphomnist)")
    parser.add_argument("--run", default=str(WEIGHTS), help="run folder (default: the shipped model)")
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    model, config = load_run(args.run)
    steps = config.diffusion.sample_steps
    test = load_dataset(args.data, "test")
    measure = morphometric_reader(test.graph)
    i_int = test.graph.index("intensity")
    idx = np.sort(np.random.default_rng(args.seed).permutation(len(test))[: min(args.n, len(test))])
    x, labels, classes = images_tensor(test, idx), test.labels[idx], test.classes[idx]
    values = marginal_values(test.labels, idx, args.seed)
    mean, std = label_stats(model)
    abd = abduct(model, x, steps=steps, abduction="ddpm", class_labels=classes, generator=abduction_generator(args.seed, 1))
    unedited = measure(x)
    print(f"{len(idx)} test digits, {steps} DDIM steps, ddpm abduction, seed {args.seed}")

    own = block_values(model, abd.z, mean, std)[:, i_int]
    print("\nedit size (grey levels from the latent's own intensity) | thickness change MAE | intensity change")
    for k in EDIT_SIZES:
        images, _, _ = decode_intervention(model, abd, {"intensity": own + k}, label_mean=mean, label_std=std)
        m = measure(images)
        print(f"{k:+4d} | {np.abs(m['thickness'] - unedited['thickness']).mean():.4f} | {np.mean(m['intensity'] - unedited['intensity']):+.1f}")
    sources = source_digits(args.data, "test")[idx]
    drawn, _ = morphomnist_true_counterfactuals(sources, labels, values, test.scm)["intensity"]
    true = measure(torch.as_tensor(drawn, dtype=torch.float32)[:, None] / 127.5 - 1)
    change = np.abs(values[:, i_int] - labels[:, i_int]).mean()
    print(f"true counterfactual, full edit (mean |change| {change:.0f}) | {np.abs(true['thickness'] - unedited['thickness']).mean():.4f} |")

    do = {"intensity": values[:, i_int]}
    z_cf, cls = intervene(model, abd, do, label_mean=mean, label_std=std)
    c_cf, c_f = model.condition(z_cf, class_labels=cls), model.condition(abd.z, class_labels=cls)
    print("\ncounterfactual condition above timestep s, factual below | thickness kept (MAE vs label) | intensity MAE")
    for s in (-1, *SWITCHES):
        with torch.no_grad():
            images = ddpm_decode(
                lambda xt, t, s=s: model.eps(xt, t, c_cf if int(t[0]) > s else c_f), abd.x_T, abd.residuals, abd.timesteps, model.scheduler.alphas_cumprod
            ).clamp(-1, 1)
        m = measure(images)
        name = "all levels" if s < 0 else f"s = {s}"
        print(f"{name:<10} | {np.abs(m['thickness'] - labels[:, 0]).mean():.4f} | {np.abs(m['intensity'] - values[:, i_int]).mean():.2f}")


if __name__ == "__main__":
    main()

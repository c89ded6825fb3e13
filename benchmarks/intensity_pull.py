"""How much of a digit's own intensity a do(intensity) edit keeps, for one run or several side by side.

    python benchmarks/intensity_pull.py --data data/morphomnist --n 200 --compare runs/style-7k

On ``causaldiffae evaluate``'s test digits and intervention values (``--seed``, default ``ddpm``
abduction, abducted once as ``evaluate`` does), one row per run:

- the latent's read-out: MAE of the factual latent's block values against the labels;
- do(intensity): the measured intensity's MAE against the target and its mean signed error;
- the pull: the least-squares slope and correlation of the error (measured - target) on the
  distance the edit had to go (the unedited digit's measured intensity - target). A slope of 0.05
  means the edit lands 5% of the way back towards the digit's own intensity, so the model carries
  that much of it past the intervention; the MAE left once that linear pull is removed is the
  edit's scatter;
- the thickness kept under the edit (MAE against the label), the failing criterion's figure.

``--step`` picks a checkpoint of ``--run`` only; every ``--compare`` run uses its latest weights.

``--style-variants`` adds, for a run with a style block (``model.style_dim``), the same edit with
the style block zeroed (as training hides it) and with another digit's style block: if the pull
came through the style block, it would fall with them.
"""

from __future__ import annotations

import numpy as np
import torch
from evaluate_draw import arguments, evaluate_draw

from causaldiffae.counterfactual import block_values, decode, intervene


def style_variants(model, z: torch.Tensor, seed: int) -> dict[str, torch.Tensor]:
    """``z`` with its style block as abducted, zeroed, and taken from another digit of the batch."""
    causal, style = model.split(z)
    other = torch.from_numpy(np.random.default_rng(seed).permutation(len(z)))
    return {
        "": z,
        ", style zeroed": torch.cat([causal, torch.zeros_like(style)], dim=1),
        ", another digit's style": torch.cat([causal, style[other]], dim=1),
    }


def pull_rows(args) -> tuple[int, list[str]]:
    """How many digits were drawn, and the rows of ``args.run``: its own edit, and with ``--style-variants`` the style block's variants."""
    d = evaluate_draw(args)
    model, abd = d.model, d.abduction
    measure = d.measure
    i_th, i_int = d.data.graph.index("thickness"), d.data.graph.index("intensity")
    read = block_values(model, abd.z, d.label_mean, d.label_std)
    target = d.values[:, i_int]
    unedited = measure(d.x)
    z_cf, classes = intervene(model, abd, {"intensity": target}, label_mean=d.label_mean, label_std=d.label_std)
    variants = style_variants(model, z_cf, args.seed) if args.style_variants and model.style_dim else {"": z_cf}
    rows = []
    for suffix, z in variants.items():
        images = decode(model, abd.x_T, z, abd.timesteps, class_labels=classes, residuals=d.residuals)
        rows.append(row(args.run + suffix, read, d.labels, measure(images), unedited, target, i_th, i_int))
    return len(d.idx), rows


def row(name: str, read: np.ndarray, labels: np.ndarray, edited: dict, unedited: dict, target: np.ndarray, i_th: int, i_int: int) -> str:
    """One table row from the latent's read-out and the edited and unedited digits' morphometrics."""
    error, gap = edited["intensity"] - target, unedited["intensity"] - target
    slope, intercept = np.polyfit(gap, error, 1)
    scatter = np.abs(error - (slope * gap + intercept)).mean()
    return " | ".join(
        [
            name,
            f"{np.abs(read[:, i_th] - labels[:, i_th]).mean():.3f}",
            f"{np.abs(read[:, i_int] - labels[:, i_int]).mean():.2f}",
            f"{np.abs(error).mean():.2f}",
            f"{error.mean():+.2f}",
            f"{slope:.3f}",
            f"{np.corrcoef(gap, error)[0, 1]:.2f}",
            f"{scatter:.2f}",
            f"{np.abs(edited['thickness'] - labels[:, i_th]).mean():.4f}",
        ]
    )


def main() -> None:
    parser = arguments(__doc__.splitlines()[0])
    parser.add_argument("--compare", action="append", default=[], help="another run folder, measured on the same digits (repeatable)")
    parser.add_argument("--style-variants", action="store_true", help="also decode with the style block zeroed and swapped (runs with one)")
    args = parser.parse_args()
    for i, run in enumerate([args.run, *args.compare]):
        args.run, args.step = run, args.step if i == 0 else None
        n, rows = pull_rows(args)
        if i == 0:
            print(f"{n} {args.split} digits, seed {args.seed}, ddpm abduction, each run's own DDIM steps and spacing unless --spacing")
            print(
                "run | latent read-out MAE: thickness | intensity | do(intensity): intensity MAE | mean signed error "
                "| pull (slope on the edit's distance) | r | MAE without the pull | thickness kept MAE"
            )
        print("\n".join(rows), flush=True)


if __name__ == "__main__":
    from causaldiffae.cli import guarded

    raise SystemExit(guarded(main))

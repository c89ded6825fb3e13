"""Where the thickness drift of a do(intensity) edit comes from: edit size, noise levels, cut or edges.

    python benchmarks/intensity_edit_anatomy.py --data data/morphomnist

On ``causaldiffae evaluate``'s test digits and intervention values (seed 0, default ``ddpm``
abduction, abducted once as ``evaluate`` does), three tables:

1. Edit size. Intensity set ``k`` grey levels away from the value the digit's own latent reads,
   and the measured thickness change from the unedited digit (MAE) and how far its stroke pixels
   are from the unedited digit scaled by the edit's gain (see 3), beside the true
   counterfactual's change for the full edit ``evaluate`` asks for. A drift that is already large
   for ``k = 1`` is the decoder redrawing the strokes, not the edit's size.
2. Noise levels. The same full edit decoded with the counterfactual condition only above
   timestep ``s`` and the factual one below it: what the low noise levels draw.
3. Cut or edges. The full edit's thickness change measured as usual and at the grey level a
   proportional scaling of the unedited digit would be cut at (its threshold x the edit's gain,
   the ratio of measured intensities), and how far stroke pixels (all, edges, core) are from
   that scaled digit.
   If the first two agree, the drift is the strokes' own edges, not one brighter pixel moving
   the half-maximum cut. (The true counterfactual reads worse at that cut than at its own:
   clipping at 255 lowers its real cut below the proportional one.)
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from evaluate_draw import arguments, evaluate_draw

from causaldiffae.counterfactual import block_values, decode_intervention, intervene
from causaldiffae.data import morphometrics as mm
from causaldiffae.data.base import pixels_tensor, to_uint8
from causaldiffae.data.morphomnist import source_digits
from causaldiffae.diffusion import ddpm_decode
from causaldiffae.evaluation.oracle import morphomnist_true_counterfactuals

EDIT_SIZES = (1, 3, 10, 30, -10, -30)
SWITCHES = (50, 150, 300, 500)


def main() -> None:
    args = arguments(__doc__.splitlines()[0]).parse_args()
    d = evaluate_draw(args)
    model, steps, ds, idx, x, labels, values, abd = d.model, d.steps, d.data, d.idx, d.x, d.labels, d.values, d.abduction
    mean, std = d.label_mean, d.label_std
    measure = d.measure
    i_int = ds.graph.index("intensity")
    unedited = measure(x)
    print(f"{len(idx)} {args.split} digits, {steps} DDIM steps ({d.spacing} spacing), ddpm abduction, seed {args.seed}")

    own = block_values(model, abd.z, mean, std)[:, i_int]
    before = to_uint8(x)[:, 0].astype(np.float64)
    print("\nedit size (grey levels from the latent's own intensity) | thickness change MAE | intensity change | stroke pixels from the scaled digit")
    for k in EDIT_SIZES:
        images, _, _ = decode_intervention(model, abd, {"intensity": own + k}, label_mean=mean, label_std=std)
        m = measure(images)
        pixels = off_the_scaled_digit(before, to_uint8(images)[:, 0].astype(np.float64))["stroke"]
        print(f"{k:+4d} | {np.abs(m['thickness'] - unedited['thickness']).mean():.4f} | {np.mean(m['intensity'] - unedited['intensity']):+.1f} | {pixels:.2f}")
    sources = source_digits(args.data, args.split)[idx]
    drawn, _ = morphomnist_true_counterfactuals(sources, labels, values, d.scm)["intensity"]
    true = measure(pixels_tensor(drawn))
    change = np.abs(values[:, i_int] - labels[:, i_int]).mean()
    print(f"true counterfactual, full edit (mean |change| {change:.0f}) | {np.abs(true['thickness'] - unedited['thickness']).mean():.4f} |")

    do = {"intensity": values[:, i_int]}
    z_cf, cls = intervene(model, abd, do, label_mean=mean, label_std=std)
    c_cf, c_f = model.condition(z_cf, class_labels=cls), model.condition(abd.z, class_labels=cls)
    print("\ncounterfactual condition above timestep s, factual below | thickness kept (MAE vs label) | intensity MAE")
    i_th = ds.graph.index("thickness")
    def switched(s: int) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        """The decoder told the counterfactual condition above timestep ``s``, the factual one at and below it."""
        return lambda xt, t: model.eps(xt, t, c_cf if int(t[0]) > s else c_f)

    full = full_thickness = None
    for s in (-1, *SWITCHES):
        with torch.no_grad():
            images = ddpm_decode(switched(s), abd.x_T, d.residuals, abd.timesteps, model.alphas_cumprod).clamp(-1, 1)
        m = measure(images)
        if s < 0:
            full, full_thickness = images, m["thickness"]
        name = "all levels" if s < 0 else f"s = {s}"
        print(f"{name:<10} | {np.abs(m['thickness'] - labels[:, i_th]).mean():.4f} | {np.abs(m['intensity'] - values[:, i_int]).mean():.2f}")

    print(
        "\nfull edit | thickness change MAE | at the proportional cut "
        "| grey levels from the scaled digit: stroke pixels | edges (unedited 32-159) | core (160-255)"
    )
    assert full is not None  # the first pass, s = -1, edits at every level
    for name, after, thickness in (("model", to_uint8(full)[:, 0], full_thickness), ("true counterfactual", drawn, true["thickness"])):
        after = np.asarray(after, dtype=np.float64)
        at_cut = thickness_at_the_proportional_cut(before, after)
        r = off_the_scaled_digit(before, after)
        print(
            f"{name} | {np.abs(thickness - unedited['thickness']).mean():.4f} | {np.abs(at_cut - unedited['thickness']).mean():.4f} "
            f"| {r['stroke']:.2f} | {r['edges']:.2f} | {r['core']:.2f}"
        )


def gains(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """Each edit's gain: the ratio of measured intensities, after over before."""
    return np.array([mm.measure_intensity(a) / mm.measure_intensity(b) for b, a in zip(before, after)])


def thickness_at_the_proportional_cut(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """Each ``after``'s thickness, cut where ``before`` scaled by the edit's gain would be cut."""
    return np.array([
        mm.measure_thickness(a, level=mm.upscale(a).min() + g * (mm.threshold(b) - mm.upscale(b).min()))
        for b, a, g in zip(before, after, gains(before, after))
    ])


def off_the_scaled_digit(before: np.ndarray, after: np.ndarray) -> dict[str, float]:
    """Mean |pixel difference| of ``after`` from ``before`` scaled by the edit's gain (clipped as the
    dataset clips), over the unedited digit's stroke pixels, its edges (grey 32-159) and its core (160+)."""
    off = np.abs(after - np.clip(gains(before, after)[:, None, None] * before, 0, 255))
    return {name: float(off[where].mean()) for name, where in (("stroke", before > 0), ("edges", (before >= 32) & (before < 160)), ("core", before >= 160))}


if __name__ == "__main__":
    from causaldiffae.cli import guarded

    raise SystemExit(guarded(main))

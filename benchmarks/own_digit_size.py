"""How a digit drawn at another size than MNIST's fares, and how often ``counterfactual --images`` notes it.

    python benchmarks/own_digit_size.py --data data/morphomnist [--n 100] [--scales 1,0.85,0.7,0.6,1.15]

A user's own digit is rarely framed as MNIST frames its digits (the larger side 20 of 28 px). On
``evaluate``'s digits and intervention values (``--seed``), each digit is redrawn at each scale
about the image's centre (shrunk with a box filter into a black margin, or enlarged bicubically
and cropped), as a file read by ``--images`` would arrive, then abducted (``ddpm``, true classes)
and set to ``evaluate``'s thickness and, separately, intensity values. Printed per scale: the
measured thickness / intensity MAE against the requested value, and the share of digits the
extent note of ``counterfactual --images`` would name (the run's ``extent`` metadata).
"""

from __future__ import annotations

import numpy as np
import torch
from evaluate_draw import arguments, evaluate_draw
from PIL import Image

from causaldiffae.checkpoint import read_model_meta
from causaldiffae.cli.counterfactual import EXTENT_SLACK
from causaldiffae.counterfactual import abduct, decode, intervene
from causaldiffae.data.base import extent, pixels_tensor, to_uint8
from causaldiffae.evaluation.metrics import abduction_generator


def rescaled(digit: np.ndarray, scale: float) -> np.ndarray:
    """A uint8 ``(H, W)`` digit redrawn at ``scale`` about the image's centre, in an image of the same size."""
    side = digit.shape[0]
    n = round(side * scale)
    if n == side:
        return digit
    drawn = np.asarray(Image.fromarray(digit).resize((n, n), Image.Resampling.BOX if n < side else Image.Resampling.BICUBIC))
    if n < side:
        out = np.zeros_like(digit)
        at = (side - n) // 2
        out[at : at + n, at : at + n] = drawn
        return out
    at = (n - side) // 2
    return drawn[at : at + side, at : at + side].copy()


def main() -> None:
    parser = arguments(__doc__.splitlines()[0])
    parser.add_argument("--scales", default="1,0.85,0.7,0.6,1.15", help="comma-separated sizes relative to the digits' own")
    args = parser.parse_args()
    scales = [float(s) for s in args.scales.split(",")]
    d = evaluate_draw(args)
    model, graph = d.model, d.data.graph
    low, high = read_model_meta(f"{args.run}/model.safetensors").get("extent", [0.0, 1.0])
    digits = to_uint8(d.x)[:, 0]
    side = digits.shape[1]
    print(f"{len(d.idx)} {d.data.split} digits, {d.steps} DDIM steps ({d.spacing}), ddpm abduction; "
          f"the run's extent {low * side:.0f}-{high * side:.0f} px, noted beyond it by {EXTENT_SLACK * side:.1f} px")
    print(f"| scale | median span (px of {side}) | noted | do(thickness): thickness MAE | do(intensity): intensity MAE |")
    print("|---|---|---|---|---|")
    for scale in scales:
        pixels = np.stack([rescaled(digit, scale) for digit in digits])[..., None]
        spans = extent(pixels)
        noted = np.mean((spans < low - EXTENT_SLACK) | (spans > high + EXTENT_SLACK))
        abduction = abduct(model, pixels_tensor(pixels), steps=d.steps, spacing=d.spacing, abduction="ddpm",
                           class_labels=d.classes, generator=abduction_generator(args.seed, 1))
        errors = []
        for variable in ("thickness", "intensity"):
            target = d.values[:, graph.index(variable)]
            z_cf, classes = intervene(model, abduction, {variable: target}, label_mean=d.label_mean, label_std=d.label_std)
            images = decode(model, abduction.x_T, z_cf, abduction.timesteps, class_labels=classes, residuals=abduction.residuals)
            errors.append(float(np.abs(d.measure(images)[variable] - target).mean()))
        print(f"| {scale:g} | {np.median(spans) * side:.0f} | {noted:.0%} | {errors[0]:.3f} | {errors[1]:.2f} |", flush=True)


if __name__ == "__main__":
    from causaldiffae.cli import guarded

    torch.set_grad_enabled(False)
    raise SystemExit(guarded(main))

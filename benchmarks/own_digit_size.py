"""How a user's own digit fares, drawn at another size than MNIST's or photographed, how often
``counterfactual --images`` notes it, and what ``--frame`` gives back.

    python benchmarks/own_digit_size.py --data data/morphomnist [--n 100] [--scales 1,0.85,0.7,0.6,1.15] [--drawing pen] [--light 0] [--vignette 0] [--chalk] [--uneven 0] [--even-ink]

A user's own digit is rarely framed as MNIST frames its digits (the larger side 20 of 28 px). On
``evaluate``'s digits and intervention values (``--seed``), each digit is drawn as a user's file
would be: on a page of 8x its pixels, enlarged bicubically and then cut at half its peak brightness
(``--drawing pen``: sharp edges at the page's resolution, as a pen or a paint program draws) or
left smooth (``--drawing smooth``: an enlarged 28-px digit, its edges as soft as at 28 px), at each
scale about the page's centre (shrunk with a box filter into a black margin, or enlarged and
cropped), saved as PNG. ``--drawing photo`` photographs the pen drawing: dark ink (45) on grey paper
(205) with a camera's noise (sd 3 grey levels), read with ``--invert``, so its page is grey where
MNIST's is black; ``--light N`` lights it from the left, the page N grey levels brighter there and N
darker at the right; ``--vignette N`` darkens it towards its corners, as a lens does, N grey levels there
with the square of the distance from the centre; ``--chalk`` draws light ink (205) on a dark page (45)
instead, read without ``--invert``; ``--uneven N`` leaves its ink up to N grey levels lighter in
places, as a pen pressed unevenly does (on a pen or smooth drawing, as a scan of white paper inverted: its
ink dimmer by up to N/255 of its brightness, its page black; ``--even-ink`` then frames as
``counterfactual --frame --even-ink`` does). ``--drawing stored --scales 1`` saves the 28-px test digits as they are, for what
``--frame`` does to a file already framed as MNIST frames its digits. Each file is read as ``counterfactual --images`` reads it, as it is and with ``--frame``, then
abducted (``ddpm``, true classes) and set to ``evaluate``'s thickness and, separately, intensity
values. Printed per scale: the measured thickness / intensity MAE against the requested value for
both readings, and the share of files a size or background note would name (the run's ``extent`` and
``edge_brightness`` metadata).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch
from evaluate_draw import arguments, evaluate_draw
from PIL import Image

from causaldiffae.counterfactual import abduct, decode, intervene
from causaldiffae.data.base import pixels_tensor, to_uint8
from causaldiffae.data.folder import read_image
from causaldiffae.data.framing import EXTENT_SLACK, Framing, likeness
from causaldiffae.evaluation.metrics import abduction_generator

PAGE = 8  # a user's file has this many times the run's pixels
PAPER, INK, GRAIN = 205, 45, 3.0  # a photographed page: the paper's and the ink's grey levels, the camera's noise (sd)


def page(digit: np.ndarray, scale: float, pen: bool) -> np.ndarray:
    """A uint8 ``(H, W)`` digit drawn ``PAGE`` times larger (bicubic; cut at half its peak with ``pen``), at
    ``scale`` about the page's centre."""
    side = digit.shape[0] * PAGE
    large = np.asarray(Image.fromarray(digit).resize((side, side), Image.Resampling.BICUBIC))
    if pen:
        large = np.where(large >= digit.max() / 2, digit.max(), 0).astype(np.uint8)
    n = round(side * scale)
    if n == side:
        return large
    drawn = np.asarray(Image.fromarray(large).resize((n, n), Image.Resampling.BOX if n < side else Image.Resampling.BICUBIC))
    if n < side:
        out = np.zeros_like(large)
        at = (side - n) // 2
        out[at : at + n, at : at + n] = drawn
        return out
    at = (n - side) // 2
    return drawn[at : at + side, at : at + side].copy()


def pressure(shape: tuple[int, ...], rng: np.random.Generator, uneven: float) -> np.ndarray:
    """How many grey levels lighter a pen pressed unevenly leaves its ink, pixel by pixel: from none to
    ``uneven``, a random field smooth over an eighth of the page."""
    from scipy import ndimage

    field = ndimage.gaussian_filter(rng.normal(size=shape), shape[0] / 8)
    return uneven * (field - field.min()) / np.ptp(field)


def press(drawing: np.ndarray, rng: np.random.Generator, uneven: float) -> np.ndarray:
    """A uint8 white-on-black ``drawing`` with its ink dimmer in places by a share of up to ``uneven`` / 255
    (``pressure``: ``uneven`` grey levels for ink at 255, fewer for a dimmer digit, whose strokes never
    vanish), as a pen pressed unevenly on white paper leaves it once scanned and inverted: its page
    stays black."""
    return (drawing * (1 - pressure(drawing.shape, rng, uneven) / 255)).round().clip(0, 255).astype(np.uint8)


def photograph(drawing: np.ndarray, rng: np.random.Generator, light: float = 0.0, vignette: float = 0.0, uneven: float = 0.0,
               chalk: bool = False) -> np.ndarray:
    """A uint8 white-on-black ``drawing`` as a camera sees it on paper: ``INK`` on ``PAPER`` (with ``chalk``,
    ``PAPER``'s grey level on a page at ``INK``'s: a light digit on a dark board), with ``GRAIN``,
    ``light`` grey levels brighter at the left and as much darker at the right, ``vignette`` grey levels
    darker at the corners than at the centre (with the square of the distance from it), and the ink up
    to ``uneven`` grey levels lighter in places, as a pen pressed unevenly leaves it (``pressure``, its
    lowest point at ``INK``; drawn only where ``uneven`` is set, so the other options' pages stay as
    they were)."""
    ink = drawing.astype(np.float64) / max(int(drawing.max()), 1)
    down, across = np.linspace(-1, 1, ink.shape[0])[:, None], np.linspace(-1, 1, ink.shape[1])[None, :]
    paper, drawn = (INK, PAPER) if chalk else (PAPER, INK)
    lit = paper + light * -across - vignette * (down**2 + across**2) / 2
    pressed = drawn + np.sign(paper - drawn) * pressure(ink.shape, rng, uneven) if uneven else drawn
    return (lit + (pressed - paper) * ink + rng.normal(0, GRAIN, ink.shape)).round().clip(0, 255).astype(np.uint8)


def main() -> None:
    parser = arguments(__doc__.splitlines()[0])
    parser.add_argument("--scales", default="1,0.85,0.7,0.6,1.15", help="comma-separated sizes relative to the digits' own")
    parser.add_argument("--drawing", choices=("pen", "smooth", "photo", "stored"), default="pen", help="how the files draw the digits (default pen)")
    parser.add_argument("--light", type=float, default=0.0, help="with --drawing photo: the page N grey levels brighter at the left, N darker at the right")
    parser.add_argument("--vignette", type=float, default=0.0, help="with --drawing photo: the page N grey levels darker at its corners than at its centre")
    parser.add_argument("--chalk", action="store_true", help="with --drawing photo: light ink (205) on a dark page (45), read without --invert")
    parser.add_argument("--uneven", type=float, default=0.0, help="the ink up to N grey levels lighter in places (a pen's pressure; "
                        "with --drawing pen or smooth, dimmer on the black page by up to N/255 of its brightness, as a scan of "
                        "white paper inverted)")
    parser.add_argument("--even-ink", action="store_true", help="frame as counterfactual --frame --even-ink does (the ink evened on the run's own page too)")
    args = parser.parse_args()
    if (args.light or args.vignette or args.chalk) and args.drawing != "photo":
        parser.error("--light, --vignette and --chalk shape a photograph: give --drawing photo")
    if args.uneven and args.drawing == "stored":
        parser.error("--uneven shapes a drawing: give --drawing pen, smooth or photo")
    scales = [float(s) for s in args.scales.split(",")]
    if args.drawing == "stored" and scales != [1.0]:
        parser.error("--drawing stored saves the digits as they are: give --scales 1")
    d = evaluate_draw(args)
    model, graph = d.model, d.data.graph
    low, median, high = model.framing["extent"]
    framing = Framing.of_run(model.framing)
    assert framing is not None  # the run keeps extent: read above
    digits = to_uint8(d.x)[:, 0]
    side = digits.shape[1]
    drawing = args.drawing + "".join(part for part, given in (
        (f", lit +-{args.light:g}", args.light), (f", vignetted -{args.vignette:g}", args.vignette), (f", ink uneven by {args.uneven:g}", args.uneven),
        (", light ink on a dark page", args.chalk), (", framed with --even-ink", args.even_ink)) if given)
    drawn_as = f"as stored ({side} px)" if args.drawing == "stored" else f"on {side * PAGE} px pages ({drawing})"
    print(f"{len(d.idx)} {d.data.split} digits {drawn_as}, {d.steps} DDIM steps ({d.spacing}), ddpm abduction; "
          f"the run's extent {low * side:.0f}-{high * side:.0f} px (median {median * side:.0f}), noted beyond it by {EXTENT_SLACK * side:.1f} px; "
          f"--frame draws edges rising over {framing.edge_width} px")
    print(f"| scale | median span (px of {side}) | noted | thickness MAE under do(thickness) | intensity MAE under do(intensity) "
          "| the same with --frame |")
    print("|---|---|---|---|---|---|")

    def errors(pixels: np.ndarray) -> tuple[float, float]:
        abduction = abduct(model, pixels_tensor(pixels), steps=d.steps, spacing=d.spacing, abduction="ddpm",
                           class_labels=d.classes, generator=abduction_generator(args.seed, 1))
        out = []
        for variable in ("thickness", "intensity"):
            target = d.values[:, graph.index(variable)]
            z_cf, classes = intervene(model, abduction, {variable: target}, label_mean=d.label_mean, label_std=d.label_std)
            images = decode(model, abduction.x_T, z_cf, abduction.timesteps, class_labels=classes, residuals=abduction.residuals)
            out.append(float(np.abs(d.measure(images)[variable] - target).mean()))
        return out[0], out[1]

    photo = args.drawing == "photo"
    inverted = photo and not args.chalk  # a dark digit on paper is turned over; a light one on a dark page is not
    rng = np.random.default_rng(args.seed)
    with tempfile.TemporaryDirectory() as folder:
        for scale in scales:
            files = [Path(folder) / f"{k}.png" for k in range(len(digits))]
            for file, digit in zip(files, digits):
                drawn = digit if args.drawing == "stored" else page(digit, scale, args.drawing != "smooth")
                if photo:
                    drawn = photograph(drawn, rng, args.light, args.vignette, args.uneven, args.chalk)
                elif args.uneven:
                    drawn = press(drawn, rng, args.uneven)
                Image.fromarray(drawn).save(file)
            plain = np.stack([read_image(file, 1, side, invert=inverted)[0] for file in files])
            framed = np.stack([read_image(file, 1, side, invert=inverted, frame=framing, even=args.even_ink)[0] for file in files])
            seen = likeness(plain, model.framing)
            spans = np.array([each.size for each in seen])
            noted = np.mean([bool({"edge_brightness", "extent"} & set(each.unlike)) for each in seen])
            (thickness, intensity), again = errors(plain), errors(framed)
            print(f"| {scale:g} | {np.median(spans) * side:.0f} | {noted:.0%} | {thickness:.3f} | {intensity:.2f} "
                  f"| {again[0]:.3f} / {again[1]:.2f} |", flush=True)


if __name__ == "__main__":
    from causaldiffae.cli import guarded

    torch.set_grad_enabled(False)
    raise SystemExit(guarded(main))

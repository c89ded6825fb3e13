"""How long ``counterfactual --images FILE --invert --frame`` takes to frame a phone photograph.

    python benchmarks/frame_time.py [--width 4000] [--height 3000] [--repeats 3]

A synthetic photograph: a 7 drawn with a pen's round strokes, dark ink on grey paper lit from the
left, with a camera's grain, its ink pressed unevenly and its red, green and blue channels tinted
apart (``own_digit_size.photograph``, at ``--width`` x ``--height``, 12 megapixels by default), read
as ``read_image`` reads it with ``--invert``. Prints the median over ``--repeats`` of each stage
``frame_file`` runs for the shipped model's framing (``page_surface``, then ``level``, which fits it
again, ``even_ink`` and the whole ``frame_file`` with its cut and edge drawing), in seconds. Run at two
commits for a before and after: every stage is a public function of ``causaldiffae.data.framing``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

import numpy as np
from own_digit_size import photograph
from PIL import Image, ImageDraw

from causaldiffae.checkpoint import read_model_meta
from causaldiffae.data.framing import Framing, even_ink, frame_file, level, page_surface
from causaldiffae.demo import WEIGHTS


def drawn_seven(width: int, height: int) -> np.ndarray:
    """A white 7 on black, two round-ended strokes a fiftieth of the height wide, right of centre."""
    canvas = Image.new("L", (width, height), 0)
    pen, stroke = ImageDraw.Draw(canvas), max(1, height // 50)
    top, bottom, left, right = height * 0.25, height * 0.75, width * 0.45, width * 0.65
    pen.line([(left, top), (right, top), (left + (right - left) * 0.3, bottom)], fill=255, width=stroke, joint="curve")
    for x, y in ((left, top), (left + (right - left) * 0.3, bottom)):
        pen.ellipse([x - stroke / 2, y - stroke / 2, x + stroke / 2, y + stroke / 2], fill=255)
    return np.asarray(canvas)


def seconds(task: Callable[[], object], repeats: int) -> float:
    """The median wall time of ``task`` over ``repeats`` calls."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        task()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=4000)
    parser.add_argument("--height", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    grey = photograph(drawn_seven(args.width, args.height), rng, light=20, uneven=80)
    tint = np.array([1.0, 0.97, 0.9])  # a warm light: the channels apart by a few grey levels
    image = 255 - (grey[..., None] * tint).round().astype(np.uint8)  # read with --invert
    framing = Framing.of_run(read_model_meta(WEIGHTS / "model.safetensors"))
    assert framing is not None and framing.background is not None  # the shipped model keeps both
    levelled, was = level(image, framing.background)
    assert was is not None  # a grey page: levelled, as --frame does
    resolution = 28
    print(f"a {args.width}x{args.height} RGB photograph ({args.width * args.height / 1e6:.0f} MP), its page {was:.2f} bright, "
          f"framed for the shipped model; median of {args.repeats}")
    print("| stage | seconds |")
    print("|---|---|")
    for stage, task in (("page_surface", lambda: page_surface(image)),
                        ("level (page_surface included)", lambda: level(image, framing.background)),
                        ("even_ink", lambda: even_ink(levelled, resolution, framing.size)),
                        ("frame_file (all of --frame)", lambda: frame_file(image, framing, resolution))):
        print(f"| {stage} | {seconds(task, args.repeats):.2f} |", flush=True)


if __name__ == "__main__":
    main()

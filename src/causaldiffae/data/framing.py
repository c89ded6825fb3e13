"""How images are framed: the background at their edges, where their brightness centres, how large
their bright part is drawn; and a file redrawn to the framing of a run's training images.

A run answers for images like its training images. MNIST frames every digit the same way (white on
black, its larger side 20 of 28 pixels, its brightness centroid at the centre), and a user's own
file rarely is: ``train`` keeps these measures of its images in the weights' metadata, and
``counterfactual --images`` notes a file beyond them (``--frame`` redraws it to them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping

import numpy as np

from causaldiffae.data.base import colour_channels, resize_images

EDGE_PX = 2  # the frame edge_brightness reads: MNIST's digits keep a 4-pixel margin of their 28
BAND_ROWS = 64  # the rows of a photograph page_surface and level take at once: 64 of a 4000-pixel-wide RGB one are 6 MB in float64


def edge_brightness(images: np.ndarray) -> np.ndarray:
    """Each uint8 ``(N, H, W, C)`` image's mean brightness in [0, 1] over its outer ``EDGE_PX`` pixels
    and its colour channels (alpha left out): the background a run's own images share, which a file
    given to it should share too (a photographed digit, dark on white, does not)."""
    frame = np.ones(images.shape[1:3], dtype=bool)
    frame[EDGE_PX:-EDGE_PX, EDGE_PX:-EDGE_PX] = False
    return images[..., colour_channels(images.shape[3])][:, frame].mean(axis=(1, 2), dtype=np.float64) / 255


def _bands(height: int) -> Iterator[slice]:
    """Bands of ``BAND_ROWS`` rows: a large photograph's pixels computed band by band give the same values
    as all at once, without a float copy of all of them (a 12-MP RGB photograph levels in 1.0 s, 2.7 s at once; benchmarks/frame_time.py)."""
    return (slice(top, top + BAND_ROWS) for top in range(0, height, BAND_ROWS))


def _per_channel(reduce: Callable[[np.ndarray], Any], image: np.ndarray) -> np.ndarray:
    """``reduce`` (``np.max``, ``np.min``) over each channel of an ``(H, W, C)`` array in turn: numpy's
    reduction over the first two axes at once strides through memory, 20x slower on a photograph."""
    return np.array([reduce(image[..., c]) for c in range(image.shape[2])])


def background(image: np.ndarray) -> np.ndarray:
    """The median of a uint8 ``(H, W, C)`` image's outermost pixels, channel by channel: the page it is drawn on."""
    border = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]])
    return np.median(border, axis=0)


def page_surface(image: np.ndarray) -> np.ndarray:
    """The page under a uint8 ``(H, W, C)`` image as a float ``(H, W, C)`` surface, channel by channel: the
    least-squares bowl (a plane and one round curvature, in square pixels) through the pixels of its
    outermost rows and columns that lie nearer its ``background`` (their median) than half the way to the
    image's farthest pixel from it. A photographed page lit from one side is brighter there, and the
    plane follows it; a lens darkens it towards the corners, round its centre, and the curvature follows
    that, with the plane moving the centre where the photograph was cropped (a plane alone leaves a light
    digit's dark page up to 15 grey levels bright under the digit, docs/counterfactuals.md). Ink that
    reaches the edge, along most of one side of a tight crop even, is left out of the fit while the page
    holds most of the border."""
    h, w, _ = image.shape
    down, across = (np.arange(h) - (h - 1) / 2) / max(h, w), (np.arange(w) - (w - 1) / 2) / max(h, w)
    rows = np.concatenate([np.zeros(w, int), np.full(w, h - 1), np.arange(h), np.arange(h)])
    columns = np.concatenate([np.arange(w), np.arange(w), np.zeros(h, int), np.full(h, w - 1)])
    border = image[rows, columns].astype(np.float64)
    middle = background(image)  # float32 below is exact: halves of grey levels, summed over at most four channels
    farthest = max(float(np.abs(image[rows] - middle.astype(np.float32)).sum(axis=2).max()) for rows in _bands(h))
    near = np.abs(border - middle).sum(axis=1) <= farthest / 2
    page = near if near.any() else np.ones_like(near)  # a border of two colours in halves: no pixel is near their median
    design = np.stack([np.ones(len(rows)), down[rows], across[columns], down[rows] ** 2 + across[columns] ** 2], axis=1)
    (offset, slope_down, slope_across, bowl), *_ = np.linalg.lstsq(design[page], border[page], rcond=None)
    y, x = down[:, None, None], across[None, :, None]
    surface = (offset + slope_down * y + bowl * y * y) + (slope_across * x + bowl * x * x)  # a row's part plus a column's: one full-size sum
    return np.clip(surface, 0, 255, out=surface)  # a fitted slope or curve can run past the pixels' range at the far corners


def _dark(span: tuple[float, float]) -> bool:
    """Whether a run whose pages' ``edge_brightness`` spans ``span`` draws on dark pages (MorphoMNIST's black)."""
    low, high = span
    return low + high < 1


def looks_inverted(brightness: float, span: tuple[float, float]) -> bool:
    """Whether a page ``brightness`` bright (in [0, 1]) lies on the other side of mid-grey from a run's pages,
    whose ``edge_brightness`` spans ``span``: a dark digit on white paper, held to a run of white digits on black."""
    return (brightness < 0.5) != _dark(span)


def level(image: np.ndarray, span: tuple[float, float]) -> tuple[np.ndarray, float | None]:
    """A uint8 ``(H, W, C)`` image whose page (``page_surface`` over its colour channels, its mean in
    [0, 1]) lies outside ``span``, its run's ``edge_brightness``, mapped linearly pixel by pixel so that
    the page under it lands on the span's page end (the darker end where the run's pages are dark; the
    other end is digits reaching the edge) and the ink's extreme (the brightest pixel there) stays;
    and the page's mean brightness, None where the image is left as it is. A photographed page, once
    inverted, is grey where MNIST's are black, which costs the shipped model more than half its
    precision, and lit unevenly more (docs/counterfactuals.md). A page on the other side of mid-grey
    from the run's is left: the file looks inverted, which the notes say."""
    colour = colour_channels(image.shape[2])
    page = page_surface(image)[..., colour]
    low, high = span
    was = float(page.mean()) / 255
    dark = _dark(span)
    if low <= was <= high or looks_inverted(was, span):
        return image, None
    target, side = (low, -1) if dark else (high, 1)  # side: the sign of the page's brightness less the ink's
    ink = _per_channel(np.max if dark else np.min, image[..., colour]).astype(np.float64)
    blank = np.maximum(_per_channel(np.max, page) - ink, ink - _per_channel(np.min, page)) < 1  # a channel with no ink: all of it is page
    out = image.copy()
    for rows in _bands(image.shape[0]):
        contrast = side * np.maximum(side * (page[rows] - ink), 1)  # at least a grey level, where the page is as bright as the ink
        pixels = image[rows, :, colour].astype(np.float64)
        levelled = np.where(blank, target * 255, ink + (pixels - ink) * (target * 255 - ink) / contrast)
        out[rows, :, colour] = levelled.round().clip(0, 255).astype(np.uint8)
    return out, was


def centroids(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each uint8 ``(N, H, W, C)`` image's brightness centroid ``(rows, columns)`` in pixels, over its
    colour channels; an all-black image has none and gets its centre."""
    h, w = images.shape[1:3]
    chunk = max(1, 2**24 // (h * w))  # float copies of 16M pixels at a time: a whole large split would not fit in memory
    rows, cols = np.full(len(images), (h - 1) / 2), np.full(len(images), (w - 1) / 2)
    for start in range(0, len(images), chunk):
        weight = images[start : start + chunk, ..., colour_channels(images.shape[3])].mean(axis=3, dtype=np.float64)
        mass = weight.sum(axis=(1, 2))
        lit = mass > 0
        at = np.arange(start, start + len(weight))[lit]
        rows[at] = weight[lit].sum(axis=2) @ np.arange(h) / mass[lit]  # each row's weight times its index: no grid of indices
        cols[at] = weight[lit].sum(axis=1) @ np.arange(w) / mass[lit]
    return rows, cols


def centroid_offset(images: np.ndarray) -> np.ndarray:
    """How far each uint8 ``(N, H, W, C)`` image's brightness centroid lies from its centre, as a fraction of
    its height: MNIST centres each digit's centroid, and a file whose digit sits elsewhere is unlike them."""
    h, w = images.shape[1:3]
    rows, cols = centroids(images)
    return np.hypot(rows - (h - 1) / 2, cols - (w - 1) / 2) / h


def _inked(images: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each uint8 ``(N, H, W, C)`` image's brightest colour channel per pixel ``(N, H, W)``, its peak
    ``(N, 1, 1)`` and its part at half the peak or more (none in an all-black image): the digit that
    ``extent`` and ``edge_width`` measure."""
    bright = images[..., colour_channels(images.shape[3])].max(axis=3)  # uint8: a whole split fits as it is
    peak = bright.max(axis=(1, 2), keepdims=True)
    return bright, peak, (bright >= peak / 2) & (peak > 0)


def ink_spans(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rows and columns each uint8 ``(N, H, W, C)`` image's pixels at half its peak brightness or more
    span (over its colour channels; 0 and 0 for an all-black image)."""
    _, _, inked = _inked(images)

    def span(lines: np.ndarray) -> np.ndarray:
        return np.where(lines.any(axis=1), lines.shape[1] - lines[:, ::-1].argmax(axis=1) - lines.argmax(axis=1), 0)

    return span(np.logical_or.reduce(inked, axis=2)), span(np.logical_or.reduce(inked, axis=1))


def extent(images: np.ndarray) -> np.ndarray:
    """The larger side of the box around each uint8 ``(N, H, W, C)`` image's pixels at half its peak
    brightness or more, as a fraction of that side of the image (``ink_spans``): MNIST fits each digit in
    20 of its 28 pixels, and a digit drawn much smaller or larger in a file is unlike them."""
    rows, cols = ink_spans(images)
    return np.maximum(rows / images.shape[1], cols / images.shape[2])


def edge_width(images: np.ndarray) -> np.ndarray:
    """How many pixels each uint8 ``(N, H, W, C)`` image's edges take to rise: its pixels between 10% and
    90% of its peak brightness per pixel on the border of its part at half the peak or more (over its
    colour channels; 0 for an all-black image). A sharp drawing resized by area averages reads about
    0.8, MorphoMNIST's digits (smoothed by a third of a pixel before their area average) 1.36, and
    the model edits a file best whose edges rise as its training images' do."""
    from scipy import ndimage

    bright, peak, inked = _inked(images)
    within_each = ndimage.generate_binary_structure(2, 1)[None]  # the 4-neighbour cross, never across images
    border = (inked & ~ndimage.binary_erosion(inked, structure=within_each)).sum(axis=(1, 2))
    partial = ((bright > 0.1 * peak) & (bright < 0.9 * peak)).sum(axis=(1, 2))
    return np.where(border > 0, partial / np.maximum(border, 1), 0.0)


KEPT = ("edge_brightness", "centroid_offset", "extent", "edge_width")  # summarise's keys: the weights' metadata holds them


def summarise(images: np.ndarray) -> dict[str, Any]:
    """How a run's training images (uint8 ``(N, H, W, C)``) are framed, kept with its weights (``train``) so
    that ``counterfactual --images`` can tell a file unlike them (``likeness``: an inverted, off-centre,
    wrongly sized or sharper-edged digit) and ``--frame`` can draw one like them (``Framing.of_run``): the
    middle 99% of their ``edge_brightness``, the 99.5th percentile of their ``centroid_offset`` and the
    0.5th, 50th and 99.5th percentiles of their ``extent`` and ``edge_width``, to four places (JSON)."""

    def quantiles(values: np.ndarray, q: list[float]) -> list[float]:
        return [round(float(v), 4) for v in np.quantile(values, q)]

    return {"edge_brightness": quantiles(edge_brightness(images), [0.005, 0.995]),
            "centroid_offset": quantiles(centroid_offset(images), [0.995])[0],
            "extent": quantiles(extent(images), [0.005, 0.5, 0.995]),
            "edge_width": quantiles(edge_width(images), [0.005, 0.5, 0.995])}


def reframe(image: np.ndarray, size: float) -> np.ndarray:
    """The square window of a uint8 ``(H, W, C)`` image that frames it as MNIST frames a digit: centred on
    its brightness centroid (to the nearest pixel), its inked box's longer side ``size`` of the window's
    side. Where the window passes the image's edge it takes the image's background (the median of its
    outermost pixels, channel by channel): black for a digit on black, and a page still white for one
    not yet inverted, which the framing notes then name. Resized to a run's resolution, the digit is
    resampled once, from the file's own pixels, so its strokes stay as sharp as the file draws them.
    An all-black image gives the square around its centre."""
    h, w, c = image.shape
    rows, cols = ink_spans(image[None])
    span = max(rows[0], cols[0])
    side = max(1, round(span / size)) if span > 0 else max(h, w)
    centre_rows, centre_cols = centroids(image[None])
    top, left = round(centre_rows[0] - (side - 1) / 2), round(centre_cols[0] - (side - 1) / 2)
    out = np.empty((side, side, c), np.uint8)
    out[:] = background(image).round().astype(np.uint8)
    rows_in, cols_in = slice(max(0, top), min(h, top + side)), slice(max(0, left), min(w, left + side))
    out[rows_in.start - top : rows_in.stop - top, cols_in.start - left : cols_in.stop - left] = image[rows_in, cols_in]
    return out


SOFTENINGS = (0.0, 1 / 6, 1 / 4, 1 / 3, 1 / 2, 2 / 3)  # Gaussian sigmas, in pixels of the run's resolution, --frame chooses from
SHARPENINGS = (1 / 2, 1, 2, 3, 4)  # unsharp-mask amounts --frame chooses from, for a file softer than the training images
UNSHARP_RADIUS = 1 / 2  # the unsharp mask's Gaussian sigma, in pixels of the run's resolution
SMOOTHED_AT = 16  # the most pixels per run pixel a window is smoothed at: a 12-megapixel photo read in 11.7 s smoothed at its own, 0.5 s so


@dataclass(frozen=True)
class Framing:
    """How a run's training images are framed, as ``--frame`` draws a file: the median ``extent`` and,
    where the run kept them, the median ``edge_width``, the span of ``edge_brightness``, the range of
    ``extent`` and the largest ``centroid_offset``."""

    size: float
    edge_width: float | None = None
    background: tuple[float, float] | None = None
    sizes: tuple[float, float] | None = None
    centroid_offset: float | None = None

    @classmethod
    def of_run(cls, meta: Mapping[str, Any]) -> Framing | None:
        """The framing a run's weights' metadata keeps (``summarise``); None for a run trained before it kept ``extent``."""
        if "extent" not in meta:
            return None
        edges, (low, median, high) = meta.get("edge_brightness"), meta["extent"]
        return cls(median, meta["edge_width"][1] if "edge_width" in meta else None,
                   None if edges is None else (float(edges[0]), float(edges[1])), (low, high), meta.get("centroid_offset"))

    def holds(self, image: np.ndarray) -> bool:
        """Whether a uint8 ``(H, W, C)`` image is drawn as the training images are: its ``extent`` within
        theirs and its ``centroid_offset`` no further out than theirs (False where either is not kept)."""
        if self.sizes is None or self.centroid_offset is None:
            return False
        return bool(self.sizes[0] <= extent(image[None])[0] <= self.sizes[1] and centroid_offset(image[None])[0] <= self.centroid_offset)


EDGE_SLACK = 0.05  # brightness beyond the training images' range before a file's frame is called unlike theirs
CENTROID_SLACK = 0.05  # of the image's height, beyond the training images' centroid offsets (1.4 px at 28)
EXTENT_SLACK = 0.05  # of the image's side, beyond the training images' extents (1.4 px at 28)
EDGE_WIDTH_SLACK = 0.1  # pixels of edge per border pixel, beyond the training images' edge widths


@dataclass(frozen=True)
class Likeness:
    """One image's framing measures and those of them beyond a run's training images' by more than the
    slacks above (``unlike``, in this order): ``edge_brightness``; else ``blank`` (no bright part); else any
    of ``centroid_offset``, ``extent``, ``edge_width``. On another background, or blank, where the digit
    sits and how it is drawn are not compared."""

    edge: float
    offset: float
    size: float
    width: float
    unlike: tuple[str, ...]


def likeness(images: np.ndarray, kept: Mapping[str, Any]) -> list[Likeness]:
    """Each uint8 ``(N, H, W, C)`` image against the training images' framing a run's weights keep
    (``CausalDiffAE.framing``): what ``counterfactual --images`` notes. Empty for a run trained before its
    weights kept its framing; ``extent`` and ``edge_width`` are compared only where the run keeps them."""
    if "edge_brightness" not in kept or "centroid_offset" not in kept:
        return []
    (low, high), most = kept["edge_brightness"], kept["centroid_offset"]
    sizes, widths = kept.get("extent"), kept.get("edge_width")
    out = []
    for measures in zip(edge_brightness(images), centroid_offset(images), extent(images), edge_width(images)):
        edge, offset, size, width = map(float, measures)
        if not low - EDGE_SLACK <= edge <= high + EDGE_SLACK:
            unlike: tuple[str, ...] = ("edge_brightness",)
        elif size == 0:
            unlike = ("blank",)
        else:
            unlike = tuple(name for name, beyond in (
                ("centroid_offset", offset > most + CENTROID_SLACK),
                ("extent", sizes is not None and not sizes[0] - EXTENT_SLACK <= size <= sizes[-1] + EXTENT_SLACK),
                ("edge_width", widths is not None and not widths[0] - EDGE_WIDTH_SLACK <= width <= widths[-1] + EDGE_WIDTH_SLACK),
            ) if beyond)
        out.append(Likeness(edge, offset, size, width, unlike))
    return out


EVEN_MOST = 4.0  # the most even_ink brightens a stroke: one at a quarter of the strongest ink's level


def even_ink(image: np.ndarray, resolution: int, size: float) -> np.ndarray:
    """A levelled uint8 ``(H, W, C)`` photograph (bright ink on a black page) with its strokes brought to
    the level of its strongest: a pen pressed unevenly leaves its ink lighter in places, which the model
    reads as a thinner, dimmer digit (``benchmarks/own_digit_size.py --uneven``). A stroke's level at a
    pixel is the brightest pixel within a stroke's width of a median over a third of one (grain does not
    move it), and never below the pixel itself, so evenly inked strokes stay as they are (smoothed, it
    fell at the strokes' ends and brightened them: an evenly inked photograph's intensity edits lost 0.3
    grey levels); each pixel is scaled by the strongest level over its own, at most ``EVEN_MOST``
    times, and the gain fades to none where the level falls from a fifth to a tenth of the strongest, so
    the page away from the ink keeps its grain. Read where the digit spans ``SMOOTHED_AT * resolution *
    size`` pixels or fewer (``--frame`` smooths there too), however large the photograph."""
    from PIL import Image
    from scipy import ndimage

    h, w, _ = image.shape
    colour = colour_channels(image.shape[2])
    bright = image[..., colour].max(axis=2)
    rows, columns = ink_spans(bright[None, ..., None])
    span = max(rows[0], columns[0])
    if span == 0:
        return image
    scale = min(1.0, SMOOTHED_AT * resolution * size / span)
    small = bright if scale == 1 else np.asarray(Image.fromarray(bright).resize(
        (max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.BOX))
    inked = _inked(small[None, ..., None])[2][0]
    outline = inked & ~ndimage.binary_erosion(inked)
    width = 2 * inked.sum() / max(int(outline.sum()), 1)  # a stroke's area over half its outline
    steady = ndimage.median_filter(small, size=max(1, round(width / 3)) | 1)
    strongest = float(steady.max())
    if strongest == 0:
        return image
    stroke = np.maximum(ndimage.maximum_filter(steady, size=max(3, round(width) | 1)), small).astype(np.float64)  # never below the pixel itself
    share = np.clip((stroke / strongest - 0.1) / 0.1, 0, 1)
    gain = (1 + share * (np.clip(strongest / np.maximum(stroke, 1e-6), 1, EVEN_MOST) - 1)).astype(np.float32)
    if scale < 1:
        gain = np.asarray(Image.fromarray(gain, "F").resize((w, h), Image.Resampling.BILINEAR))
    brightened = gain > 1
    rows_in, columns_in = np.flatnonzero(brightened.any(axis=1)), np.flatnonzero(brightened.any(axis=0))
    if len(rows_in) == 0:
        return image
    (top, bottom), (left, right) = (rows_in[0], rows_in[-1] + 1), (columns_in[0], columns_in[-1] + 1)  # the rest of a large photograph is left
    out = image.copy()
    box = out[top:bottom, left:right, colour]
    box[:] = (box * gain[top:bottom, left:right, None]).round().clip(0, 255).astype(np.uint8)
    return out


def frame_file(image: np.ndarray, framing: Framing, resolution: int, even: bool = False) -> tuple[np.ndarray, float | None]:
    """A uint8 ``(H, W, C)`` file at its own resolution framed as ``framing`` says and resized to
    ``resolution``, and the background it had where it was levelled (else None). With a ``background``
    span its page is levelled first (``level``) and, where it was or ``even`` says so, its ink evened
    (``even_ink``), so that the window is centred on its ink, not its page, nor the ink's darker half.
    A file on the run's own page is evened only when asked: a digit drawn with a pressure-sensitive pen
    on a plain canvas, and not one like the training images, whose own uneven ink evening changes
    (MorphoMNIST's test digits read 0.05 px thicker and 2.8 grey levels brighter); one that looks
    inverted never is. Then it is cut (``reframe``), unless the file is at the run's resolution and
    ``framing.holds`` it already: cut again it would be resampled by a fraction of a pixel, which
    softens it. With an ``edge_width``,
    a window whose edges rise more sharply than that is then smoothed by the Gaussian of ``SOFTENINGS``,
    and one whose edges rise more softly sharpened by the unsharp mask of ``SHARPENINGS`` (never past its
    own darkest and brightest pixels), whichever result's edges rise most nearly as wide, or left. A
    sharp drawing is smoothed as MorphoMNIST smooths its digits and a soft one sharpened, which brings
    the shipped model's thickness error on either to about the stored test digits'
    (docs/counterfactuals.md)."""
    from scipy import ndimage

    levelled = None
    if even and framing.background is None:
        raise ValueError("evening a file's ink needs the run's page (framing.background): bright ink on dark or dark on light")
    if framing.background is not None:
        image, levelled = level(image, framing.background)
        inverted = looks_inverted(float(edge_brightness(image[None])[0]), framing.background)
        if levelled is not None or (even and not inverted):  # a photographed page: its ink's level is the pen's, not the digit's
            dark = _dark(framing.background)
            image = even_ink(image, resolution, framing.size) if dark else 255 - even_ink(255 - image, resolution, framing.size)
    kept = image.shape[:2] == (resolution, resolution) and framing.holds(image)
    window = image if kept else reframe(image, framing.size)
    plain = resize_images(window[None], resolution)[0]
    if framing.edge_width is None:
        return plain, levelled
    fine = resize_images(window[None], min(window.shape[0], SMOOTHED_AT * resolution))[0].astype(np.float64)
    per_pixel = fine.shape[0] / resolution  # the smoothed window's pixels per pixel of the run's

    def blurred(sigma: float) -> np.ndarray:
        return ndimage.gaussian_filter(fine, (sigma * per_pixel, sigma * per_pixel, 0))

    plain_width = edge_width(plain[None])[0]
    if plain_width <= framing.edge_width:  # sharper than the training images: smoothed, never sharpened
        drawn = [blurred(sigma).clip(0, 255) for sigma in SOFTENINGS[1:]]
    else:
        unsharp = fine - blurred(UNSHARP_RADIUS)
        drawn = [(fine + amount * unsharp).clip(fine.min(), fine.max()) for amount in SHARPENINGS]
    candidates = [plain] + [resize_images(each.round().astype(np.uint8)[None], resolution)[0] for each in drawn]
    widths = np.concatenate([[plain_width], edge_width(np.stack(candidates[1:]))])
    return candidates[int(np.argmin(np.abs(widths - framing.edge_width)))], levelled

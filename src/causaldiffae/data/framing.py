"""How images are framed: the background at their edges, where their brightness centres, how large
their bright part is drawn; and a file redrawn to the framing of a run's training images.

A run answers for images like its training images. MNIST frames every digit the same way (white on
black, its larger side 20 of 28 pixels, its brightness centroid at the centre), and a user's own
file rarely is: ``train`` keeps these measures of its images in the weights' metadata, and
``counterfactual --images`` notes a file beyond them (``--frame`` redraws it to them).
"""

from __future__ import annotations

import numpy as np

from causaldiffae.data.base import colour_channels

EDGE_PX = 2  # the frame edge_brightness reads: MNIST's digits keep a 4-pixel margin of their 28


def edge_brightness(images: np.ndarray) -> np.ndarray:
    """Each uint8 ``(N, H, W, C)`` image's mean brightness in [0, 1] over its outer ``EDGE_PX`` pixels
    and its colour channels (alpha left out): the background a run's own images share, which a file
    given to it should share too (a photographed digit, dark on white, does not)."""
    frame = np.ones(images.shape[1:3], dtype=bool)
    frame[EDGE_PX:-EDGE_PX, EDGE_PX:-EDGE_PX] = False
    return images[..., colour_channels(images.shape[3])][:, frame].mean(axis=(1, 2), dtype=np.float64) / 255


def centroids(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each uint8 ``(N, H, W, C)`` image's brightness centroid ``(rows, columns)`` in pixels, over its
    colour channels; an all-black image has none and gets its centre."""
    h, w = images.shape[1:3]
    yy, xx = np.mgrid[:h, :w]
    chunk = max(1, 2**24 // (h * w))  # float copies of 16M pixels at a time: a whole large split would not fit in memory
    rows, cols = np.full(len(images), (h - 1) / 2), np.full(len(images), (w - 1) / 2)
    for start in range(0, len(images), chunk):
        weight = images[start : start + chunk, ..., colour_channels(images.shape[3])].mean(axis=3, dtype=np.float64)
        mass = weight.sum(axis=(1, 2))
        lit = mass > 0
        at = np.arange(start, start + len(weight))[lit]
        rows[at] = (weight[lit] * yy).sum(axis=(1, 2)) / mass[lit]
        cols[at] = (weight[lit] * xx).sum(axis=(1, 2)) / mass[lit]
    return rows, cols


def centroid_offset(images: np.ndarray) -> np.ndarray:
    """How far each uint8 ``(N, H, W, C)`` image's brightness centroid lies from its centre, as a fraction of
    its height: MNIST centres each digit's centroid, and a file whose digit sits elsewhere is unlike them."""
    h, w = images.shape[1:3]
    rows, cols = centroids(images)
    return np.hypot(rows - (h - 1) / 2, cols - (w - 1) / 2) / h


def ink_spans(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rows and columns each uint8 ``(N, H, W, C)`` image's pixels at half its peak brightness or more
    span (over its colour channels; 0 and 0 for an all-black image)."""
    bright = images[..., colour_channels(images.shape[3])].max(axis=3)  # uint8: a whole split fits as it is
    peak = bright.max(axis=(1, 2), keepdims=True)
    inked = (bright >= peak / 2) & (peak > 0)

    def span(lines: np.ndarray) -> np.ndarray:
        return np.where(lines.any(axis=1), lines.shape[1] - lines[:, ::-1].argmax(axis=1) - lines.argmax(axis=1), 0)

    return span(inked.any(axis=2)), span(inked.any(axis=1))


def extent(images: np.ndarray) -> np.ndarray:
    """The larger side of the box around each uint8 ``(N, H, W, C)`` image's pixels at half its peak
    brightness or more, as a fraction of that side of the image (``ink_spans``): MNIST fits each digit in
    20 of its 28 pixels, and a digit drawn much smaller or larger in a file is unlike them."""
    rows, cols = ink_spans(images)
    return np.maximum(rows / images.shape[1], cols / images.shape[2])


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
    border = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]])
    out = np.empty((side, side, c), np.uint8)
    out[:] = np.median(border, axis=0).round().astype(np.uint8)
    rows_in, cols_in = slice(max(0, top), min(h, top + side)), slice(max(0, left), min(w, left + side))
    out[rows_in.start - top : rows_in.stop - top, cols_in.start - left : cols_in.stop - left] = image[rows_in, cols_in]
    return out

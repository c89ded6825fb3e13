"""Morpho-MNIST measurements and edits of 28x28 digits (SPEC §3), fast enough to build data sets.

A digit is measured on a x``scale`` upscaled copy (cubic spline + Gaussian smoothing, as
``skimage.transform.pyramid_expand(order=3)``) binarised at ``min + 0.5 * (max - min)``:
thickness is twice the mean distance-to-background on the medial axis, over ``scale``.
Thickness is set by dilating or eroding that binary digit with a disk (drawn with anti-aliased
edges from a signed distance map) and averaging it back down to 28x28, then correcting the
radius until the result re-measures at the target. ``length`` is the length of the medial axis,
short branches included, so it reads a little longer than a thinned centre line.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

import numpy as np
from scipy import ndimage as ndi
from skimage.morphology import skeletonize
from skimage.transform import pyramid_expand

SCALE = 4
# Medial-axis tie-breaking is random in scikit-image unless seeded; a fixed seed keeps every
# measurement reproducible.
_TIEBREAK_SEED = 0
# Fraction of the target width at which a thinned digit's skeleton is still drawn: 0.85 keeps
# ~97% of digits thinned below 1.5 px in one piece, at a ~0.1 px upward bias on those targets.
THINNING_FLOOR = 0.85
_EIGHT = np.ones((3, 3), dtype=bool)


@dataclass(frozen=True)
class Morphometrics:
    """Measurements in original (28x28) pixel units; ``slant`` in radians, positive leaning right."""

    thickness: float
    intensity: float
    area: float
    length: float
    slant: float


def _as_image(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    if image.ndim != 2:
        raise ValueError(f"expected a 2-D grey image, got shape {image.shape}")
    return image.astype(np.float64)


def _threshold(image: np.ndarray) -> float:
    lo, hi = float(image.min()), float(image.max())
    return lo + 0.5 * (hi - lo)


def upscale(image: np.ndarray, scale: int = SCALE) -> np.ndarray:
    """Smooth x``scale`` upsampling used by every measurement."""
    return pyramid_expand(_as_image(image), upscale=scale, order=3)


def threshold(image: np.ndarray, scale: int = SCALE) -> float:
    """The grey level ``binarise`` cuts the upscaled digit at: half way from its darkest to its brightest."""
    return _threshold(upscale(image, scale))


def binarise(image: np.ndarray, scale: int = SCALE, level: float | None = None) -> np.ndarray:
    """The upscaled digit's foreground: at or above ``level`` (default ``threshold``), in grey levels.

    A fixed ``level`` lets an analysis separate a shift of the cut (one brighter pixel moves it)
    from changes of the strokes' own edges.
    """
    up = upscale(image, scale)
    return up >= (_threshold(up) if level is None else level)


@lru_cache(maxsize=1)
def _medial_tables() -> tuple[np.ndarray, np.ndarray]:
    """Neighbourhood lookup tables of scikit-image's medial axis, built once instead of per call."""
    patterns = ((np.arange(512)[:, None] >> np.arange(9)) & 1).astype(bool).reshape(512, 3, 3)
    centre = patterns[:, 1, 1]
    without_centre = patterns.copy()
    without_centre[:, 1, 1] = False
    components = np.array([ndi.label(p, _EIGHT)[1] for p in patterns])
    components_without = np.array([ndi.label(p, _EIGHT)[1] for p in without_centre])
    keep = centre & ((components != components_without) | (patterns.sum(axis=(1, 2)) < 3))
    cornerness = 9 - patterns.sum(axis=(1, 2))
    return np.ascontiguousarray(keep, dtype=np.uint8), cornerness


def _neighbourhood_index(binary: np.ndarray) -> np.ndarray:
    """Per pixel, the 9-bit code of its 3x3 neighbourhood (bit k = row-major neighbour k)."""
    padded = np.pad(binary, 1).astype(np.int32)
    h, w = binary.shape
    index = np.zeros((h, w), dtype=np.int32)
    for k in range(9):
        dy, dx = divmod(k, 3)
        index += padded[dy : dy + h, dx : dx + w] << k
    return index


def medial_axis(binary: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Medial axis and distance transform, equal to ``skimage.morphology.medial_axis(rng=0)``.

    scikit-image rebuilds its 512-entry lookup tables on every call (about 15 ms); here they
    are cached and only the sequential thinning loop (compiled, from scikit-image) runs.
    """
    binary = np.asarray(binary, dtype=bool)
    try:
        from skimage.morphology._skeletonize import _skeletonize_loop
    except ImportError:  # a scikit-image without the private loop: same result, slower
        from skimage.morphology import medial_axis as skimage_medial_axis

        return skimage_medial_axis(binary, return_distance=True, rng=_TIEBREAK_SEED)
    keep, cornerness = _medial_tables()
    distance = ndi.distance_transform_edt(binary)
    corner_score = cornerness[_neighbourhood_index(binary)]
    ii, jj = np.nonzero(binary)
    tiebreaker = np.random.default_rng(_TIEBREAK_SEED).permutation(np.arange(len(ii)))
    order = np.lexsort((tiebreaker, corner_score[ii, jj], distance[ii, jj])).astype(np.int32)
    result = np.ascontiguousarray(binary, dtype=np.uint8)
    _skeletonize_loop(result, ii.astype(np.intp), jj.astype(np.intp), order, keep)
    return result.astype(bool), distance


def _thickness_of(binary: np.ndarray, scale: int) -> float:
    if not binary.any():
        return 0.0
    skeleton, distance = medial_axis(binary)
    return float(2.0 * distance[skeleton].mean() / scale)


def measure_thickness(image: np.ndarray, scale: int = SCALE, level: float | None = None) -> float:
    """Mean stroke width in original pixels (0 for a blank image); ``level`` as in ``binarise``."""
    image = _as_image(image)
    if image.max() <= image.min():
        return 0.0
    return _thickness_of(binarise(image, scale, level), scale)


def measure_intensity(image: np.ndarray) -> float:
    """Median grey level of the foreground pixels (those at or above half way from min to max)."""
    image = _as_image(image)
    return float(np.median(image[image >= _threshold(image)]))


def _skeleton_length(skeleton: np.ndarray) -> float:
    """Length of a one-pixel-wide curve: unit steps between 4-neighbours, sqrt(2) between diagonal-only ones."""
    s = skeleton
    straight = np.count_nonzero(s[:, 1:] & s[:, :-1]) + np.count_nonzero(s[1:, :] & s[:-1, :])
    diag_a = s[1:, 1:] & s[:-1, :-1] & ~s[1:, :-1] & ~s[:-1, 1:]
    diag_b = s[1:, :-1] & s[:-1, 1:] & ~s[1:, 1:] & ~s[:-1, :-1]
    return float(straight + np.sqrt(2.0) * (np.count_nonzero(diag_a) + np.count_nonzero(diag_b)))


def _slant(binary: np.ndarray) -> float:
    """Angle of the digit's vertical axis from second moments: shear ``-mu11/mu02`` (rows grow downwards)."""
    rows, cols = np.nonzero(binary)
    y = rows - rows.mean()
    x = cols - cols.mean()
    mu02 = float((y * y).sum())
    return float(np.arctan(-(x * y).sum() / mu02)) if mu02 > 0 else 0.0


def measure(image: np.ndarray, scale: int = SCALE) -> Morphometrics:
    """All measurements of one digit; area and length in original pixels."""
    image = _as_image(image)
    if image.max() <= image.min():
        return Morphometrics(0.0, float(image.max()), 0.0, 0.0, 0.0)
    binary = binarise(image, scale)
    skeleton, distance = medial_axis(binary)
    return Morphometrics(
        thickness=float(2.0 * distance[skeleton].mean() / scale),
        intensity=measure_intensity(image),
        area=float(binary.sum() / scale**2),
        length=_skeleton_length(skeleton) / scale,
        slant=_slant(binary),
    )


def downscale(mask: np.ndarray, scale: int = SCALE) -> np.ndarray:
    """Average ``scale`` x ``scale`` blocks of a lightly smoothed mask: each pixel gets its coverage.

    Coverage keeps edges anti-aliased like MNIST's own strokes; the light Gaussian (sigma of a
    third of an output pixel) softens the staircase left by the disk, as Morpho-MNIST's
    ``pyramid_reduce`` does.
    """
    smooth = ndi.gaussian_filter(mask.astype(np.float64), sigma=scale / 3.0, mode="constant")
    h, w = smooth.shape
    return smooth.reshape(h // scale, scale, w // scale, scale).mean(axis=(1, 3))


def _to_uint8(image: np.ndarray) -> np.ndarray:
    top = image.max()
    if top <= 0:
        return np.zeros(image.shape, dtype=np.uint8)
    return np.clip(np.rint(image * (255.0 / top)), 0, 255).astype(np.uint8)


def set_thickness(
    image: np.ndarray,
    target: float,
    intensity: float | None = None,
    scale: int = SCALE,
    tolerance: float = 0.01,
    max_steps: int = 6,
) -> np.ndarray:
    """Digit re-drawn with mean stroke width ``target`` (original pixels), as uint8 with peak 255.

    With ``intensity`` every candidate is also given that foreground median (``set_intensity``)
    before it is measured, so the thickness is met by the final image even where brightening
    saturates the stroke and widens it.

    The stroke is grown (radius > 0) or shrunk by a disk of ``radius`` upscaled pixels, starting
    from Morpho-MNIST's ``scale * (target - measured) / 2``. Dilation and erosion by any real
    radius come from one signed distance map, rendered with anti-aliased edges so the re-measured
    thickness moves smoothly with the radius; secant steps (regula falsi once the target is
    bracketed) then bring the re-measured thickness within ``tolerance`` of the target.

    Plain erosion breaks thin parts of a stroke (most digits thinned below 1.5 px fall apart),
    so when thinning, the digit's skeleton drawn at ``THINNING_FLOOR`` x the target width (and
    never outside the original stroke) is kept under the eroded shape.
    """
    image = _as_image(image)
    if image.max() <= image.min():
        return _to_uint8(image) if intensity is None else set_intensity(image, intensity)
    binary = binarise(image, scale)
    inside = ndi.distance_transform_edt(binary)
    signed = np.where(binary, 0.5 - inside, ndi.distance_transform_edt(~binary) - 0.5)
    min_radius = 1.0 - float(inside.max())  # keep at least the stroke's core
    radius = scale * (target - _thickness_of(binary, scale)) / 2.0
    floor = np.zeros_like(signed)
    if radius < 0:
        to_skeleton = ndi.distance_transform_edt(~skeletonize(binary))
        floor_radius = THINNING_FLOOR * scale * target / 2.0
        floor = np.minimum(np.clip(floor_radius + 0.5 - to_skeleton, 0.0, 1.0), np.clip(0.5 - signed, 0.0, 1.0))

    def render(radius: float) -> np.ndarray:
        drawn = _to_uint8(downscale(np.maximum(np.clip(radius + 0.5 - signed, 0.0, 1.0), floor), scale))
        return drawn if intensity is None else set_intensity(drawn, intensity)

    below: tuple[float, float] | None = None  # (radius, error < 0)
    above: tuple[float, float] | None = None  # (radius, error > 0)
    best_error, best = np.inf, image
    for _ in range(max_steps):
        radius = max(radius, min_radius)
        candidate = render(radius)
        error = measure_thickness(candidate, scale) - target
        if abs(error) < abs(best_error):
            best_error, best = error, candidate
        if abs(error) <= tolerance:
            break
        if error < 0:
            below = (radius, error)
        else:
            above = (radius, error)
        if below is not None and above is not None:
            (r0, e0), (r1, e1) = below, above
            radius = r0 - e0 * (r1 - r0) / (e1 - e0)
        else:
            radius -= error * scale / 2.0
    return best


def set_intensity(image: np.ndarray, target: float, tolerance: float = 0.5, max_steps: int = 12) -> np.ndarray:
    """Digit scaled so its foreground median is ``target`` (clipped to 0..255), as uint8.

    Scaling up can saturate the brightest pixels, which moves the foreground threshold, and
    rounding makes the median move in steps, so the gain is corrected multiplicatively until the
    target is bracketed, then bisected; the closest result is kept.
    """
    image = _as_image(image)
    current = measure_intensity(image) if image.max() > image.min() else 0.0
    if current <= 0:
        return np.clip(np.rint(image), 0, 255).astype(np.uint8)
    gain = target / current
    low = high = None  # gains known to give a median below / above the target
    best_error, best = np.inf, image
    for _ in range(max_steps):
        out = np.clip(np.rint(image * gain), 0, 255).astype(np.uint8)
        got = measure_intensity(out)
        if abs(got - target) < abs(best_error):
            best_error, best = got - target, out
        if abs(got - target) <= tolerance or got <= 0:
            break
        if got < target:
            low = gain
        else:
            high = gain
        gain = float(np.sqrt(low * high)) if low is not None and high is not None else gain * target / got
    return best


# Many digits at once ---------------------------------------------------------------------------

MEASURES = {"thickness": measure_thickness, "intensity": measure_intensity}
# Below these counts one process is faster: forking a process that holds a model costs 50-70 ms,
# the time to measure about six digits or redraw about two (2-core CPU, 2026-12-02).
_FORK_MIN_MEASURE, _FORK_MIN_REDRAW = 32, 8


def _chunks(n: int, workers: int) -> list[slice]:
    """Four chunks per worker, so a slow chunk does not leave the other workers idle."""
    size = max(1, -(-n // (4 * workers))) if workers > 1 else max(n, 1)
    return [slice(s, s + size) for s in range(0, n, size)]


def _map_chunks(fn: Callable[[tuple], np.ndarray], arrays: tuple[np.ndarray, ...], workers: int, fork_min: int,
                extra: tuple = ()) -> list[np.ndarray]:
    """``fn((*chunk of each array, *extra))`` for chunks of the arrays' rows, from ``workers``
    processes when there are at least ``fork_min`` rows (below that one process is faster)."""
    from causaldiffae.data.parallel import map_progress

    n = len(arrays[0])
    workers = workers if n >= fork_min else 1
    jobs = ((*(a[c] for a in arrays), *extra) for c in _chunks(n, workers))
    return map_progress(fn, jobs, workers=workers, total=n, desc="digits", unit="digit", progress=False)


def _measure_chunk(job: tuple[np.ndarray, tuple[str, ...]]) -> np.ndarray:
    digits, names = job
    return np.array([[MEASURES[v](d) for v in names] for d in digits], dtype=np.float64).reshape(len(digits), len(names))


def measure_digits(digits: np.ndarray, names: tuple[str, ...] = ("thickness", "intensity"), workers: int = 1) -> dict[str, np.ndarray]:
    """``{name: values}`` of the digits ``(N, 28, 28)`` (or ``(N, 28, 28, 1)``), ``workers`` processes
    at once: the medial axis costs about 10 ms a digit, so scoring hundreds is worth the cores."""
    digits = np.asarray(digits).reshape(len(digits), 28, 28)
    parts = _map_chunks(_measure_chunk, (digits,), workers, _FORK_MIN_MEASURE, (tuple(names),))
    values = np.concatenate(parts) if parts else np.empty((0, len(names)))
    return {v: values[:, j] for j, v in enumerate(names)}


def _redraw_chunk(job: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    sources, labels = job
    return np.stack([set_thickness(d, t, intensity=i) for d, (t, i) in zip(sources, labels)])


def redraw_digits(sources: np.ndarray, labels: np.ndarray, workers: int = 1) -> np.ndarray:
    """``set_thickness(source, thickness, intensity=intensity)`` for each source digit and its
    (thickness, intensity) row of ``labels``, uint8 ``(N, 28, 28)``, ``workers`` processes at once."""
    sources = np.asarray(sources).reshape(len(sources), 28, 28)
    parts = _map_chunks(_redraw_chunk, (sources, np.asarray(labels, dtype=np.float64)), workers, _FORK_MIN_REDRAW)
    return np.concatenate(parts) if parts else np.empty((0, 28, 28), dtype=np.uint8)

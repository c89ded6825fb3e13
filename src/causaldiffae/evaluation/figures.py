"""Figures for the report (matplotlib, PNG): image grids, line plots, verdicts over resamples, latent scatter,
training curves.

Each function takes plain arrays and a path and writes one PNG atomically; nothing here knows
about models, so the figures can be regenerated from saved arrays. They draw on bare ``Figure``
objects, not pyplot, so a caller's backend (a notebook's) and its open figures are left alone.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Sequence

import numpy as np

from causaldiffae.atomic import atomic_file
from causaldiffae.data.base import colour_channels

if TYPE_CHECKING:  # matplotlib loads only when a figure is drawn
    from matplotlib.axis import Axis
    from matplotlib.figure import Figure


def _figure(figsize: tuple[float, float]) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=figsize)


def _save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    with atomic_file(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    return path


def to_display(image: np.ndarray) -> np.ndarray:
    """``(C, H, W)`` in ``[-1, 1]`` to something ``imshow`` shows: grey ``(H, W)`` or RGB ``(H, W, 3)``.

    An alpha channel (grey + alpha, or RGBA as in Pendulum's images) is composited over white, so
    transparency, and a model's edits to it, stay visible (Pendulum's alpha is opaque throughout).
    """
    img = np.clip((np.asarray(image, dtype=np.float64) + 1.0) / 2.0, 0.0, 1.0)
    colour = img[colour_channels(img.shape[0])]
    if img.shape[0] in (2, 4):
        alpha = img[-1:]
        colour = colour * alpha + (1.0 - alpha)
    return colour[0] if len(colour) == 1 else np.transpose(colour, (1, 2, 0))


def image_grid(
    rows: Sequence[Sequence[np.ndarray]],
    path: str | Path,
    *,
    col_titles: Sequence[str] | None = None,
    row_titles: Sequence[str] | None = None,
    title: str | None = None,
    cell: float = 1.1,
) -> Path:
    """A grid of images (rows x columns), each ``(C, H, W)`` in ``[-1, 1]``, shown at the first one's size.

    The cells are pasted into one picture on one axes: one small axes per cell took 1-2 s to lay
    out and save a demo grid on a 2-core CPU. Each cell gets a thin grey frame (scenes on a white
    background would otherwise run into each other), and titles longer than a cell wrap onto more
    lines instead of running into the next.
    """
    from matplotlib.collections import PatchCollection
    from matplotlib.patches import Rectangle

    shown = [[to_display(image) for image in row] for row in rows]
    n_rows, n_cols = len(shown), max(len(r) for r in shown)
    h, w = next(image for row in shown for image in row).shape[:2]
    colour = any(image.ndim == 3 for row in shown for image in row)
    gap = max(1, h // 16)  # pixels between cells
    canvas = np.ones((n_rows * (h + gap) - gap, n_cols * (w + gap) - gap) + ((3,) if colour else ()))
    frames = []
    for i, row in enumerate(shown):
        for j, image in enumerate(row):
            image = image[np.arange(h) * image.shape[0] // h][:, np.arange(w) * image.shape[1] // w]  # nearest, if sizes differ
            top, left = i * (h + gap), j * (w + gap)
            canvas[top : top + h, left : left + w] = np.repeat(image[..., None], 3, axis=-1) if colour and image.ndim == 2 else image
            frames.append(Rectangle((left - 0.5, top - 0.5), w, h))
    fig = _figure((cell * canvas.shape[1] / w, cell * canvas.shape[0] / h))  # an image ``cell`` inches wide, as one axes each drew it
    ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
    ax.imshow(canvas, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.add_collection(PatchCollection(frames, facecolor="none", edgecolor="0.7", linewidth=0.6))
    ax.set_axis_off()
    width = max(8, int(cell * 15))  # characters of 7-pt text that fit across (or, rotated, along) one cell
    lines = 0
    for j, text in enumerate((col_titles or [])[:n_cols]):
        wrapped = _wrap(text, width)
        lines = max(lines, wrapped.count("\n") + 1)
        ax.annotate(wrapped, (j * (w + gap) + (w - 1) / 2, -0.5), xytext=(0, 3), textcoords="offset points", ha="center", va="bottom",
                    fontsize=7)
    for i, text in enumerate((row_titles or [])[:n_rows]):
        ax.annotate(_wrap(text, width), (-0.5, i * (h + gap) + (h - 1) / 2), xytext=(-3, 0), textcoords="offset points", ha="right",
                    va="center", rotation=90, fontsize=7)
    if title:  # above the column titles, not over them
        ax.annotate(title, (0.5, 1.0), xycoords="axes fraction", xytext=(0, 6 + 8.5 * lines), textcoords="offset points", ha="center",
                    va="bottom", fontsize=9)
    return _save(fig, path)


def _wrap(text: str, width: int) -> str:
    """Break a title at its spaces (``thickness=4, intensity=120`` after the comma) to lines of ``width``."""
    return textwrap.fill(text, width=width, break_long_words=False, break_on_hyphens=False)


def line_plot(
    x: Sequence[float],
    series: Mapping[str, Sequence[float]],
    path: str | Path,
    *,
    xlabel: str,
    ylabel: str,
    title: str | None = None,
    baselines: Mapping[str, float] | None = None,
    logx: bool = False,
    logy: bool = False,
) -> Path:
    """One line per series; ``baselines`` are drawn as dashed horizontal lines (e.g. the null baseline).

    ``logy`` for series that span decades, where a linear axis would flatten the smaller ones to 0.
    """
    import matplotlib

    fig = _figure((4.6, 3.2))
    ax = fig.subplots()
    colors = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (name, ys) in enumerate(series.items()):
        ax.plot(x, ys, marker="o", label=name, color=colors[i % len(colors)])
    for i, (name, y) in enumerate((baselines or {}).items()):
        ax.axhline(y, linestyle="--", linewidth=1, color=colors[(i + len(series)) % len(colors)], label=name)
    if logx:
        ax.set_xscale("log")
        ax.minorticks_off()
    if logy:
        ax.set_yscale("log")
    if len(x) <= 12 and (logx or all(float(v).is_integer() for v in x)):  # steps, m, w: never 2x10^1 or m = 1.5
        ax.set_xticks(list(x), [f"{v:g}" for v in x])
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, path)


def resample_strips(
    names: Sequence[str],
    series: Mapping[str, Sequence[np.ndarray | None]],
    path: str | Path,
    *,
    title: str | None = None,
) -> Path:
    """One row per criterion: each series' resampled margins (measured / allowed, at or below 1 it
    holds) as a strip, thin over 2.5-97.5% of resamples, thick over 25-75%, a dot at the median,
    on a log axis with the bar at 1. A strip that crosses the bar is a verdict within the noise."""
    import matplotlib
    from matplotlib.transforms import ScaledTranslation

    colors = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
    fig = _figure((6.4, 0.55 * len(names) + 1.2))
    ax = fig.subplots()
    offsets = np.linspace(-0.15, 0.15, len(series)) if len(series) > 1 else np.zeros(1)
    for k, (label, margins) in enumerate(series.items()):
        drawn = False
        for row, m in enumerate(margins):
            if m is None:
                continue
            lo, q1, mid, q3, hi = np.percentile(np.clip(m, 1e-3, 1e3), [2.5, 25, 50, 75, 97.5])
            y = row + offsets[k]
            ax.plot([lo, hi], [y, y], color=colors[k % len(colors)], linewidth=1)
            ax.plot([q1, q3], [y, y], color=colors[k % len(colors)], linewidth=4, solid_capstyle="butt")
            ax.plot([mid], [y], "o", color=colors[k % len(colors)], markersize=3, label=None if drawn else label)
            drawn = True
    ax.axvline(1.0, linestyle="--", linewidth=1, color="0.3", label="the bar (holds at or left of it)")
    ax.set_xscale("log")
    _plain_log_ticks(ax.xaxis)
    ax.set_yticks(range(len(names)), [_wrap(n, 38) for n in names], fontsize=7)
    ax.set_ylim(len(names) - 0.5, -0.5)
    ax.set_xlabel("measured / allowed (allowed / measured for a lower bound)")
    if title:
        ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3, axis="x")
    below_label = ax.transAxes + ScaledTranslation(0, -0.45, fig.dpi_scale_trans)  # under the x-axis label, clear of the rows
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, 0), bbox_transform=below_label, ncol=len(series) + 1, frameon=False)
    fig.tight_layout()
    return _save(fig, path)


def pca_2d(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Project codes on their first two principal components; also return the explained variance ratios."""
    x = np.asarray(codes, dtype=np.float64)
    x = x - x.mean(axis=0)
    _, s, vt = np.linalg.svd(x, full_matrices=False)
    comps = vt[:2] if vt.shape[0] >= 2 else np.vstack([vt, np.zeros_like(vt)])
    var = s**2
    ratio = var[:2] / var.sum() if var.sum() > 0 else np.zeros(2)
    return x @ comps.T, np.pad(ratio, (0, 2 - len(ratio)))


def latent_scatter(codes: np.ndarray, labels: np.ndarray, names: Sequence[str], path: str | Path, title: str | None = None) -> Path:
    """PCA of the codes, one panel per variable coloured by its value."""
    xy, ratio = pca_2d(codes)
    n = len(names)
    fig = _figure((3.3 * n, 3.0))
    axes = fig.subplots(1, n, squeeze=False)
    for j, name in enumerate(names):
        ax = axes[0][j]
        sc = ax.scatter(xy[:, 0], xy[:, 1], c=labels[:, j], s=6, cmap="viridis")
        bar = fig.colorbar(sc, ax=ax, fraction=0.046)
        bar.set_label(name, fontsize=7)
        bar.ax.tick_params(labelsize=6)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel(f"PC1 ({100 * ratio[0]:.0f}%)", fontsize=7)
        ax.set_ylabel(f"PC2 ({100 * ratio[1]:.0f}%)", fontsize=7)
        ax.tick_params(labelsize=6)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def read_metrics(path: str | Path) -> list[dict]:
    """The records of a run's ``metrics.jsonl``; a line cut short by a killed run is skipped."""
    import json

    path = Path(path)
    if not path.is_file():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and "step" in record:
            records.append(record)
    return records


CURVE_PANELS = (
    ("loss (weighted) and noise MSE", ("loss", "mse"), True),
    ("KL terms (unweighted)", ("kl_u", "kl_label", "kl_style"), False),
    ("gradient norm (before clipping)", ("grad_norm",), True),
)


def _plain_log_ticks(axis: Axis) -> None:
    """Plain numbers at 1, 2 and 5 per decade on a log axis of a few decades (at powers of ten alone
    beyond two, where 1-2-5 labels would collide): matplotlib's default labels one power of ten
    there, or crowds in "3x10^0, 2x10^0, 6x10^-1"."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    lo, hi = sorted(axis.get_view_interval())
    majors = (1.0, 2.0, 5.0) if lo <= 0 or np.log10(hi / lo) <= 2 else (1.0,)
    axis.set_major_locator(LogLocator(base=10, subs=majors))
    axis.set_minor_locator(LogLocator(base=10, subs=[s for s in range(2, 10) if s not in majors]))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def training_curves(metrics_path: str | Path, path: str | Path) -> Path | None:
    """Loss, KL and gradient-norm curves of a run from its ``metrics.jsonl``; None before its first log line."""
    records = read_metrics(metrics_path)
    if not records:
        return None
    steps = [r["step"] for r in records]
    fig = _figure((4.0 * len(CURVE_PANELS), 2.9))
    axes = fig.subplots(1, len(CURVE_PANELS), squeeze=False)
    for ax, (title, keys, log) in zip(axes[0], CURVE_PANELS):
        values = []
        for key in keys:
            if all(key in r for r in records):
                values += [r[key] for r in records]
                ax.plot(steps, [r[key] for r in records], label=key, linewidth=1)
        if log:
            ax.set_yscale("log")
            positive = [v for v in values if v > 0]
            if positive and max(positive) <= 1000 * min(positive):
                _plain_log_ticks(ax.yaxis)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(which="both", labelsize=7)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, path)

"""The true counterfactual image, where the dataset's own generator can make it: the floor of the scores.

MorphoMNIST draws every digit from a real MNIST digit (its exogenous image) and the labels:
``set_thickness(source, thickness, intensity=intensity)``. The true counterfactual under a do()
is the same drawing from the same source with the SCM's counterfactual labels: do(intensity)
keeps the thickness label, do(thickness) moves the descendant intensity. Measured with the same
morphometrics as a model's counterfactual, these images show what an exact model would score:
rendering and measurement error alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Callable, Mapping

import numpy as np

from causaldiffae.evaluation.acceptance import per_image_values
from causaldiffae.evaluation.metrics import mae

if TYPE_CHECKING:
    from causaldiffae.data.base import SCM


def morphomnist_true_counterfactuals(sources: np.ndarray, labels: np.ndarray, values: np.ndarray, scm: SCM,
                                     workers: int = 1) -> dict:
    """``{variable: (uint8 digits, true labels)}`` under do(variable = values[:, j]) for thickness and intensity.

    ``sources`` are the real digits the factual ones were drawn from, uint8 ``(N, 28, 28)`` or ``(N, 28, 28, 1)``
    (``data.morphomnist.source_digits``); ``labels`` and ``values`` the factual and intervention
    values ``(N, 2)`` in the graph order thickness, intensity; ``workers`` processes draw at once.
    """
    from causaldiffae.data.morphometrics import redraw_digits

    out = {}
    for j, variable in enumerate(("thickness", "intensity")):
        truth = scm.counterfactual(labels, {variable: values[:, j]})
        out[variable] = (redraw_digits(sources, truth, workers), truth)
    return out


def morphomnist_oracle_scores(images: np.ndarray, true: dict, labels: np.ndarray, counterfactuals: Mapping | None = None,
                              workers: int = 1) -> dict:
    """Morphometric MAE of the unedited digits and of the true counterfactuals, as in ``acceptance.summarise``.

    ``images`` are the factual uint8 digits ``(N, 28, 28)`` (or a dataset's ``(N, 28, 28, 1)``),
    ``true`` what ``morphomnist_true_counterfactuals`` drew for them. With a model's
    ``counterfactuals`` per intervened variable (same digits and values, as ``effectiveness``
    returns them: ``(N, 1, 28, 28)`` in ``[-1, 1]``), ``image_l1`` also says how far they are from
    the true images (mean absolute difference of the uint8 digits, pixels in [0, 1]) beside the
    unedited digit's distance: a direct score that needs no instrument. ``per_image`` keeps each
    digit's errors behind the do() figures, which ``acceptance.pass_rates`` resamples. ``workers``
    processes measure at once.
    """
    from causaldiffae.data.base import to_uint8
    from causaldiffae.data.morphometrics import measure_digits
    from causaldiffae.evaluation.realism import l1_pixels

    def l1(a: np.ndarray, b: np.ndarray) -> float:
        return float(l1_pixels(a / 127.5 - 1, b / 127.5 - 1).mean())

    images = np.asarray(images).reshape(len(images), 28, 28)
    (dt, truth_t), (di, truth_i) = true["thickness"], true["intensity"]
    measured = measure_digits(np.concatenate([images, dt, di]), ("thickness", "intensity"), workers)
    (base_t, t_t, i_t), (base_i, t_i, i_i) = (np.split(measured[k], 3) for k in ("thickness", "intensity"))
    errors = {
        "do_thickness": {"thickness_mae": np.abs(t_t - truth_t[:, 0]), "intensity_mae": np.abs(t_i - truth_t[:, 1])},
        "do_intensity": {"intensity_mae": np.abs(i_i - truth_i[:, 1]), "thickness_mae": np.abs(i_t - truth_i[:, 0])},
    }
    out: dict = {
        "n": int(len(images)),
        "unedited": {"thickness_mae": mae(base_t, labels[:, 0]), "intensity_mae": mae(base_i, labels[:, 1])},
        **{do: {k: float(e.mean()) for k, e in figures.items()} for do, figures in errors.items()},
        "per_image": {do: {k: per_image_values(e) for k, e in figures.items()} for do, figures in errors.items()},
    }
    if counterfactuals is not None:
        out["image_l1"] = {
            v: {"model": l1(to_uint8(counterfactuals[v])[:, 0], drawn), "null": l1(images, drawn)} for v, (drawn, _) in true.items()
        }
    return out


def sources_or_none(data: str | Path, split: str, log: Callable[[str], None] = print) -> np.ndarray | None:
    """The real digits a MorphoMNIST folder's ``split`` was drawn from, or None (and why, logged):
    a report without the true counterfactual is still a report."""
    from causaldiffae.data.base import DataError
    from causaldiffae.data.morphomnist import source_digits

    try:
        return source_digits(data, split)
    except DataError as err:
        log(f"no true counterfactual in this report: {err}")
        return None

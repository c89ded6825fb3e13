"""The true counterfactual image, where the dataset's own generator can make it: the floor of the scores.

MorphoMNIST is built by editing real digits, so the generator can perform a do() exactly:
do(intensity) rescales the digit (``set_intensity``), do(thickness) redraws it (``set_thickness``)
with the descendant intensity of the SCM's counterfactual. Measured with the same morphometrics as
a model's counterfactual, these images show what a perfect model would score: measurement and
rendering error alone. A criterion the true counterfactual fails says more about the instrument
than about the model.
"""

from __future__ import annotations

import numpy as np

from causaldiffae.evaluation.metrics import mae


def morphomnist_true_counterfactuals(images: np.ndarray, labels: np.ndarray, values: np.ndarray, scm) -> dict:
    """``{variable: (uint8 digits, true labels)}`` under do(variable = values[:, j]) for thickness and intensity.

    ``images`` are uint8 ``(N, 28, 28)``, ``labels`` and ``values`` the factual and intervention
    values ``(N, 2)`` in the graph order thickness, intensity.
    """
    from causaldiffae.data import morphometrics as mm

    truth_t = scm.counterfactual(labels, {"thickness": values[:, 0]})
    truth_i = scm.counterfactual(labels, {"intensity": values[:, 1]})
    do_t = np.stack([mm.set_thickness(im, t, intensity=i) for im, t, i in zip(images, truth_t[:, 0], truth_t[:, 1])])
    do_i = np.stack([mm.set_intensity(im, v) for im, v in zip(images, values[:, 1])])
    return {"thickness": (do_t, truth_t), "intensity": (do_i, truth_i)}


def morphomnist_oracle_scores(images: np.ndarray, labels: np.ndarray, values: np.ndarray, scm) -> dict:
    """Morphometric MAE of the unedited digits and of the true counterfactuals, as in ``acceptance.summarise``.

    ``images`` are uint8 ``(N, 28, 28)`` or a dataset's ``(N, 28, 28, 1)``.
    """
    from causaldiffae.data import morphometrics as mm

    def read(digits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return (np.array([mm.measure_thickness(d) for d in digits]), np.array([mm.measure_intensity(d) for d in digits]))

    images = np.asarray(images).reshape(len(images), 28, 28)
    cf = morphomnist_true_counterfactuals(images, labels, values, scm)
    base_t, base_i = read(images)
    (dt, truth_t), (di, truth_i) = cf["thickness"], cf["intensity"]
    t_t, t_i = read(dt)
    i_t, i_i = read(di)
    return {
        "n": int(len(images)),
        "unedited": {"thickness_mae": mae(base_t, labels[:, 0]), "intensity_mae": mae(base_i, labels[:, 1])},
        "do_thickness": {"thickness_mae": mae(t_t, truth_t[:, 0]), "intensity_mae": mae(t_i, truth_t[:, 1])},
        "do_intensity": {"intensity_mae": mae(i_i, truth_i[:, 1]), "thickness_mae": mae(i_t, truth_i[:, 0])},
    }

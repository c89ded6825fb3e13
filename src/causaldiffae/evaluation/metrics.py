"""Counterfactual metrics of SPEC §4: effectiveness, preservation, composition, reversibility.

Every metric takes a *counterfactual function* rather than a model, so the same code scores
the model, the null baseline (the identity: the unedited image) and any other method:

    cf_fn(images, do, labels, classes) -> (counterfactual images, their values in natural units)

``images`` are float ``(N, C, H, W)`` in ``[-1, 1]``; ``do`` maps variable names to ``(N,)``
natural-unit values; ``labels`` are the images' natural labels ``(N, n)`` (only a
label-conditional model uses them); the returned values let interventions be chained
(composition, reversibility).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Iterable, Mapping, TypeVar

import numpy as np
import torch

from causaldiffae.config import DEFAULT_ABDUCTION, DEFAULT_GUIDANCE, DEFAULT_MODE, DEFAULT_SPACING, DEFAULT_START, DEFAULT_STEPS, DEFAULT_W
from causaldiffae.data.base import to_uint8
from causaldiffae.evaluation.acceptance import per_image_values
from causaldiffae.evaluation.realism import l1_pixels
from causaldiffae.graph import CausalGraph

if TYPE_CHECKING:
    from causaldiffae.counterfactual import Abduction
    from causaldiffae.data.base import SCM
    from causaldiffae.models import CausalDiffAE

CounterfactualFn = Callable[
    [torch.Tensor, Mapping[str, np.ndarray], np.ndarray, "np.ndarray | None"], tuple[torch.Tensor, np.ndarray]
]
Reader = Callable[[torch.Tensor], dict[str, np.ndarray]]
T = TypeVar("T")


def identity_counterfactual(
    images: torch.Tensor, do: Mapping[str, np.ndarray], labels: np.ndarray, classes: np.ndarray | None = None
) -> tuple[torch.Tensor, np.ndarray]:
    """The null baseline: the unedited image, claiming the factual values (nothing changed)."""
    return images, np.asarray(labels, dtype=np.float64).copy()


def model_counterfactual_fn(
    model: CausalDiffAE,
    *,
    steps: int = DEFAULT_STEPS,
    w: float = DEFAULT_W,
    mode: str = DEFAULT_MODE,
    abduction: str = DEFAULT_ABDUCTION,
    guidance: str = DEFAULT_GUIDANCE,
    start: float = DEFAULT_START,
    spacing: str = DEFAULT_SPACING,
    label_mean: np.ndarray | None = None,
    label_std: np.ndarray | None = None,
    batch_size: int = 100,
    seed: int = 0,
    progress: Callable | None = None,
) -> CounterfactualFn:
    """Abduct, intervene and decode as a batched ``cf_fn``.

    Calls on the same images (one per intervened variable, say) reuse the abduction, as a grid
    does: inversion is the costliest step, and every intervention is then scored on the same
    ``x_T``. Stochastic abduction noise comes from ``abduction_generator(seed, call)``, ``call``
    counting this function's calls from 1, so a whole evaluation is reproducible. With a
    ``progress`` bar maker, batches and the sampler's steps show transient bars.
    """
    from causaldiffae.counterfactual import abduct, block_values, check_do, check_options, decode_intervention, label_stats

    check_options(model, steps=steps, w=w, mode=mode, abduction=abduction, guidance=guidance, start=start, spacing=spacing)
    mean, std = label_stats(model, label_mean, label_std)
    calls = {"n": 0}
    cache: dict[int, tuple[torch.Tensor, tuple, Abduction]] = {}

    def abduction_for(first: int, x: torch.Tensor, labels: np.ndarray | None, classes: np.ndarray | None,
                      gen: torch.Generator) -> Abduction:
        key = (None if labels is None else np.array(labels), None if classes is None else np.array(classes))
        hit = cache.get(first)
        if hit is not None and hit[0].shape == x.shape and torch.equal(hit[0], x) and all(map(_same, hit[1], key)):
            return hit[2]
        abd = abduct(model, x, steps=steps, abduction=abduction, labels=labels, class_labels=classes,
                     label_mean=mean, label_std=std, generator=gen, start=start, spacing=spacing, progress=progress is not None)
        cache[first] = (x.clone(), key, abd)
        return abd

    def cf_fn(images: torch.Tensor, do: Mapping[str, np.ndarray], labels: np.ndarray,
              classes: np.ndarray | None = None) -> tuple[torch.Tensor, np.ndarray]:
        calls["n"] += 1
        gen = abduction_generator(seed, calls["n"])
        outs, values = [], []
        starts = range(0, len(images), batch_size)
        for s in with_progress(progress, starts, "counterfactuals") if len(starts) > 1 else starts:
            sl = slice(s, s + batch_size)
            x = images[sl]
            abd = abduction_for(
                s, x, None if labels is None else np.asarray(labels)[sl], None if classes is None else np.asarray(classes)[sl], gen
            )
            batch_do = check_do(model, {k: np.asarray(v)[sl] for k, v in do.items()}, len(x))
            imgs, z_cf, _ = decode_intervention(model, abd, batch_do, label_mean=mean, label_std=std, mode=mode, w=w, guidance=guidance,
                                                progress=progress is not None)
            outs.append(imgs.cpu())
            values.append(block_values(model, z_cf, mean, std))
        return torch.cat(outs), np.concatenate(values)

    return cf_fn


def with_progress(progress: Callable | None, items: Iterable[T], desc: str) -> Iterable[T]:
    """``items`` under a transient progress bar, for loops whose every item is a batch of counterfactuals."""
    return items if progress is None else progress(items, desc=desc, leave=False)


def abduction_generator(seed: int, call: int) -> torch.Generator:
    """The noise of the ``call``-th abduction (from 1) of a ``model_counterfactual_fn`` seeded ``seed``,
    for scripts that abduct by hand as ``evaluate`` does."""
    return torch.Generator().manual_seed(seed * 100_003 + call)


def _same(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    return (a is None and b is None) or (a is not None and b is not None and np.array_equal(a, b))


def draw_indices(rng: np.random.Generator, n_items: int, n: int) -> np.ndarray:
    """``n`` distinct indices of ``n_items`` (all if fewer), ascending: how ``evaluate`` (its first draw
    from ``default_rng(seed)``), the demo and the benchmarks pick their test images."""
    return np.sort(rng.permutation(n_items)[:n])


def marginal_values(labels: np.ndarray, idx: np.ndarray, seed: int) -> np.ndarray:
    """Intervention values from the test marginal for the test images ``idx``, as ``evaluate``, the
    demo and the benchmarks draw them: the rows of a copy of all test ``labels`` permuted with
    ``seed + 1000``, so each image gets another test image's whole label vector."""
    return np.asarray(labels)[np.random.default_rng(seed + 1000).permutation(len(labels))][idx]


def roles(graph: CausalGraph, intervened: str) -> dict[str, str]:
    """``intervened`` / ``descendant`` / ``non-descendant`` for every variable."""
    desc = set(graph.descendants(intervened))
    return {
        v: "intervened" if v == intervened else "descendant" if v in desc else "non-descendant" for v in graph.variables
    }


def true_counterfactual(scm: SCM | None, graph: CausalGraph, labels: np.ndarray, do: Mapping[str, np.ndarray]) -> np.ndarray:
    """True counterfactual labels: from the SCM when known; otherwise intervened and non-descendant
    columns only (descendants are NaN, since their true values are unknown)."""
    if scm is not None:
        return np.asarray(scm.counterfactual(np.asarray(labels, dtype=np.float64), dict(do)), dtype=np.float64)
    out = np.array(labels, dtype=np.float64)
    for name, values in do.items():
        out[:, graph.index(name)] = values
        for d in graph.descendants(name):
            out[:, graph.index(d)] = np.nan
    return out


def mae(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64))))


def effectiveness(
    cf_fn: CounterfactualFn,
    read: Reader,
    images: torch.Tensor,
    labels: np.ndarray,
    values: np.ndarray,
    graph: CausalGraph,
    scm: SCM | None = None,
    classes: np.ndarray | None = None,
    measure: Reader | None = None,
    per_image: bool = False,
) -> tuple[dict, dict[str, torch.Tensor]]:
    """Intervene on each variable in turn with ``values[:, k]`` and read the counterfactuals.

    For every variable: MAE to the true counterfactual value (``mae``) and the same for the
    unedited image (``null_mae``), in natural units; ``role`` says whether it was intervened on,
    is a descendant (skipped when the SCM is unknown) or a non-descendant (preservation: the
    true value is the factual one). ``measure`` (morphometrics) gives ``measured_mae`` likewise.
    Class (digit) accuracy of the counterfactuals is preservation of identity. ``per_image`` also
    keeps each image's measured errors and class hits (``*_per_image``), which the acceptance
    bar resamples. Returns the results and the counterfactual images per intervened variable.
    """

    labels = np.asarray(labels, dtype=np.float64)
    null_read = read(images)
    null_measured = measure(images) if measure is not None else {}
    results: dict = {}
    images_out: dict[str, torch.Tensor] = {}
    for k, var in enumerate(graph.variables):
        do = {var: values[:, k]}
        truth = true_counterfactual(scm, graph, labels, do)
        cf_images, _ = cf_fn(images, do, labels, classes)
        images_out[var] = cf_images
        got = read(cf_images)
        measured = measure(cf_images) if measure is not None else {}
        entry: dict = {"variables": {}}
        for j, (name, role) in enumerate(roles(graph, var).items()):
            if np.isnan(truth[:, j]).any():
                continue
            item = {"role": role, "mae": mae(got[name], truth[:, j]), "null_mae": mae(null_read[name], truth[:, j])}
            if name in measured:
                item["measured_mae"] = mae(measured[name], truth[:, j])
                item["measured_null_mae"] = mae(null_measured[name], truth[:, j])
                if per_image:
                    item["measured_errors_per_image"] = per_image_values(np.abs(measured[name] - truth[:, j]))
                    item["measured_null_errors_per_image"] = per_image_values(np.abs(null_measured[name] - truth[:, j]))
            entry["variables"][name] = item
        if classes is not None and "class" in got:
            entry["class_accuracy"] = float(np.mean(got["class"] == classes))
            entry["null_class_accuracy"] = float(np.mean(null_read["class"] == classes))
            if per_image:
                entry["class_correct_per_image"] = per_image_values(got["class"] == classes)
        results[var] = entry
    return results, images_out


def composition_errors(
    cf_fn: CounterfactualFn,
    images: torch.Tensor,
    labels: np.ndarray,
    classes: np.ndarray | None = None,
    times: int = 10,
    progress: Callable | None = None,
) -> np.ndarray:
    """L1 (pixels in ``[0, 1]``) of each image to its original after the null intervention applied
    m = 1..times, as ``(times, N)``.

    ``progress`` (tqdm-like) counts the applications: each is a whole abduction and decoding."""
    out = []
    x, vals = images, np.asarray(labels, dtype=np.float64)
    for _ in with_progress(progress, range(times), "composition"):
        x, vals = cf_fn(x, {}, vals, classes)
        out.append(l1_pixels(x.numpy(), images.numpy()))
    return np.stack(out)


def reversibility(
    cf_fn: CounterfactualFn,
    images: torch.Tensor,
    labels: np.ndarray,
    values: np.ndarray,
    graph: CausalGraph,
    classes: np.ndarray | None = None,
    progress: Callable | None = None,
) -> dict[str, dict[str, float]]:
    """Intervene on each variable, then intervene back to its factual value; L1 of both to the original.

    "Back" is the value the model itself reads off the image (its null counterfactual's), not the
    dataset label: the gap between those two is the encoder's error, not irreversibility.
    """
    labels = np.asarray(labels, dtype=np.float64)
    _, factual = cf_fn(images, {}, labels, classes)
    out = {}
    for k, var in with_progress(progress, list(enumerate(graph.variables)), "reversibility"):
        x1, vals1 = cf_fn(images, {var: values[:, k]}, labels, classes)
        x2, _ = cf_fn(x1, {var: factual[:, k]}, vals1, classes)
        out[var] = {
            "l1_there": float(l1_pixels(x1.numpy(), images.numpy()).mean()),
            "l1_back": float(l1_pixels(x2.numpy(), images.numpy()).mean()),
        }
    return out


MORPHOMETRIC_SHAPE = (1, 28, 28)  # Morpho-MNIST's units: pixels of a 28x28 digit


def morphometric_reader(graph: CausalGraph, workers: int = 1) -> Reader | None:
    """Morpho-MNIST measurements for the variables they define (thickness, intensity), else None;
    ``workers`` processes measure at once.

    Only 28x28 digits are read: a thickness measured on a resized digit is in its own pixels, not
    in the labels' 28-pixel units.
    """
    from causaldiffae.data import morphometrics as mm

    names = tuple(v for v in graph.variables if v in mm.MEASURES)
    if not names:
        return None

    def read(images: torch.Tensor) -> dict[str, np.ndarray]:
        if tuple(images.shape[1:]) != MORPHOMETRIC_SHAPE:
            raise ValueError(f"morphometrics read {MORPHOMETRIC_SHAPE} digits, got images of shape {tuple(images.shape[1:])}")
        return mm.measure_digits(to_uint8(images)[:, 0], names, workers)

    return read

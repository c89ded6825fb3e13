"""The bar the shipped MorphoMNIST model is held to, scored from the demo or from ``causaldiffae evaluate``.

Both produce the same summary (``scores``): morphometric MAE of the intervened variable and its
descendant under do(thickness), of intensity and of the preserved thickness under do(intensity)
(beside the thickness error of plain reconstructions), digit accuracy of the counterfactuals and
the pixel change of one null intervention. ``criteria`` turns it into pass/fail rows.

The null intervention is scored through DDIM inversion when the evaluated abduction is ``ddpm``:
its abducted residuals return the image exactly by construction, so that row could not fail.

A verdict on a few hundred digits can sit inside its own sampling noise (the true counterfactual's
preservation error sits at the bar's own average). Where the summary keeps each image's values
(``per_image``: for every summary figure, the per-image values whose mean it is),
``pass_rates`` resamples the digits with replacement and says how often each criterion holds,
its value and target taken from the same resampled digits.
"""

from __future__ import annotations

import operator
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

Row = tuple[str, float | None, str, bool | None]
"""``(criterion, measured, target, passed)``; ``measured`` and ``passed`` are None without a value."""

RESAMPLES = 2000
"""Bootstrap resamples behind ``pass_rates``: the rate's own noise is then about 1 point at 50%."""

Get = Callable[..., Any]
"""A summary figure by its keys (``get("do_intensity", "thickness_mae")``): a float, or one per resample."""


class _Missing(Exception):
    """A figure the summary (the true counterfactual's, say) does not have."""


def _checks(m: Get, s: Get) -> list[Callable[[], tuple[Any, Any]]]:
    """Each criterion's (value, bound): values from the measured summary ``m``, bounds from the model's ``s``."""
    return [
        lambda: (m("do_thickness", "thickness_mae"), 0.5 * s("do_thickness", "thickness_null_mae")),
        lambda: (m("do_thickness", "intensity_mae"), s("do_thickness", "intensity_null_mae")),
        lambda: (m("do_intensity", "intensity_mae"), 0.5 * s("do_intensity", "intensity_null_mae")),
        lambda: (m("do_intensity", "thickness_mae"), 1.2 * s("do_intensity", "thickness_mae_reconstruction")),
        lambda: (np.minimum(m("do_thickness", "digit_accuracy"), m("do_intensity", "digit_accuracy")), 0.90),
        lambda: (m("composition_l1"), 0.03),
    ]


_TESTS: tuple[Callable[[Any, Any], Any], ...] = (operator.le, operator.lt, operator.le, operator.le, operator.ge, operator.le)
"""How each of ``_checks``' values must compare with its bound."""


def _getter(tree: dict) -> Get:
    """``get(*keys)`` into ``tree``, raising ``_Missing`` where a key is absent or None (a row without a value)."""
    def get(*keys: str) -> Any:
        node: Any = tree
        for key in keys:
            if not isinstance(node, dict) or node.get(key) is None:
                raise _Missing(".".join(keys))
            node = node[key]
        return node
    return get


def criteria(s: dict, measured: dict | None = None) -> list[Row]:
    """``(criterion, measured, target, passed)`` rows.

    Targets always come from ``s`` (the model's null baselines and reconstructions); ``measured``
    (default ``s``) may be another summary of the same shape, such as ``s["oracle"]`` (the true
    counterfactual), whose rows without a value are None.
    """
    t, i = s["do_thickness"], s["do_intensity"]
    via = {"inversion": "DDIM inversion"}.get(s["composition_abduction"], s["composition_abduction"])
    names_targets = [
        ("do(thickness): thickness MAE (morphometric)", f"<= 0.5 x null = {0.5 * t['thickness_null_mae']:.3f}"),
        ("do(thickness): descendant intensity MAE", f"< null = {t['intensity_null_mae']:.2f}"),
        ("do(intensity): intensity MAE (morphometric)", f"<= 0.5 x null = {0.5 * i['intensity_null_mae']:.2f}"),
        ("do(intensity): thickness error (preserved)", f"<= 1.2 x reconstruction = {1.2 * i['thickness_mae_reconstruction']:.3f}"),
        ("digit identity kept (classifier)", ">= 0.90"),
        (f"one null intervention ({via}, {s['composition_n']} images), mean abs. pixel change", "<= 0.03"),
    ]
    rows: list[Row] = []
    for (name, target), figures, test in zip(names_targets, _checks(_getter(s if measured is None else measured), _getter(s)), _TESTS):
        try:
            value, bound = figures()
        except _Missing:
            rows.append((name, None, target, None))
            continue
        rows.append((name, float(value), target, bool(test(value, bound))))
    return rows


def pass_rates(s: dict, measured: dict | None = None, resamples: int = RESAMPLES, seed: int = 0) -> list[float | None]:
    """Per criterion, the share of bootstrap resamples of the scored images in which it holds.

    Each resample draws the images with replacement and recomputes every figure as the mean of its
    per-image values in ``s["per_image"]`` (``measured["per_image"]`` for the measured side), so a
    value and its target (the model's null baseline or reconstruction) come from the same images.
    Near 0 or 1 the verdict is beyond the sampling noise of these images; near a half it is not.
    It covers which images were scored, not the draw of intervention values or of abduction noise.
    None where a row has no per-image values (older summaries, the true counterfactual's classifier rows).
    """
    return [None if r is None else float(np.mean(test(*r))) for r, test in zip(_resampled(s, measured, resamples, seed), _TESTS)]


def resampled_margins(s: dict, measured: dict | None = None, resamples: int = RESAMPLES, seed: int = 0) -> list[np.ndarray | None]:
    """Per criterion, how far each resample of ``pass_rates`` sits from its bound: measured / bound for an
    upper bound, bound / measured for a lower one (digit accuracy), so that a criterion holds at 1 or
    below whichever way it points. None where ``pass_rates`` has no rate."""
    out: list[np.ndarray | None] = []
    for r, test in zip(_resampled(s, measured, resamples, seed), _TESTS):
        if r is None:
            out.append(None)
            continue
        value, bound = (np.broadcast_to(np.asarray(v, dtype=np.float64), (resamples,)) for v in r)
        with np.errstate(divide="ignore", invalid="ignore"):
            out.append(bound / value if test is operator.ge else value / bound)
    return out


def _resampled(s: dict, measured: dict | None, resamples: int, seed: int) -> list[tuple[Any, Any] | None]:
    """Each criterion's (value, bound) on every resample, from the per-image values; None without them."""
    indices: dict[int, np.ndarray] = {}  # drawn once per image count, not once per figure

    def resampled(tree: dict | None) -> Get:
        get = _getter(tree or {})

        def means(*keys: str) -> np.ndarray:
            values = np.asarray(get(*keys), dtype=np.float64)
            if len(values) not in indices:
                indices[len(values)] = _resamples(len(values), resamples, seed)
            return values[indices[len(values)]].mean(axis=1)
        return means

    own = s.get("per_image")
    other = own if measured is None else measured.get("per_image")
    out: list[tuple[Any, Any] | None] = []
    for figures in _checks(resampled(other), resampled(own)):
        try:
            out.append(figures())
        except _Missing:
            out.append(None)
    return out


def bootstrap_ratios(values: Sequence[float] | np.ndarray, reference: Sequence[float] | np.ndarray,
                     resamples: int = RESAMPLES, seed: int = 0) -> np.ndarray:
    """``mean(values) / mean(reference)`` on each of ``resamples`` bootstrap resamples of the images, both
    means over the same resampled images (the resamples ``pass_rates`` draws for that many images)."""
    values, reference = np.asarray(values, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    idx = _resamples(len(values), resamples, seed)
    return values[idx].mean(axis=1) / reference[idx].mean(axis=1)


def _resamples(n: int, resamples: int, seed: int) -> np.ndarray:
    """``(resamples, n)`` image indices drawn with replacement, the same for every figure over ``n`` images:
    figures over the same images stay paired."""
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n))


def per_image_values(values: Sequence[float] | np.ndarray) -> list[float]:
    """Per-image values for a JSON file: six significant digits keep their mean to the summary's precision."""
    return [float(f"{float(v):.6g}") for v in np.asarray(values, dtype=np.float64).ravel()]


def is_per_image(key: str) -> bool:
    """Whether a metrics key holds per-image values (kept for resampling, left out of summaries)."""
    return key == "per_image" or key.endswith("_per_image")


def without_per_image(tree: Any) -> Any:
    """``tree`` with its per-image values left out: the summary a reader looks at."""
    if isinstance(tree, dict):
        return {k: without_per_image(v) for k, v in tree.items() if not is_per_image(k)}
    return tree


def summarise(
    effectiveness: dict,
    reconstruction_thickness_mae: float,
    composition_l1: float,
    composition_abduction: str,
    composition_n: int,
    n: int,
    steps: int,
    oracle: dict | None = None,
    *,
    reconstruction_thickness_errors: Sequence[float] | np.ndarray | None = None,
    composition_errors: Sequence[float] | np.ndarray | None = None,
) -> dict:
    """The summary from ``evaluation.metrics.effectiveness`` results (with morphometrics and classes),
    the measured thickness error of reconstructions and the pixel change (pixels in [0, 1]) of one
    null intervention through ``composition_abduction`` on ``composition_n`` images; ``oracle``
    (``evaluation.oracle.morphomnist_oracle_scores`` on the same digits and values) is kept as is.

    With effectiveness run ``per_image`` and the per-image reconstruction errors and pixel changes
    given, the summary also keeps them (``per_image``) for ``pass_rates``.
    """
    s = {
        "n": int(n),
        "steps": int(steps),
        **_figures(effectiveness, reconstruction_thickness_mae, per_image=False),
        "composition_l1": composition_l1,
        "composition_abduction": composition_abduction,
        "composition_n": int(composition_n),
        **({"oracle": oracle} if oracle is not None else {}),
    }
    try:
        s["per_image"] = {
            **_figures(effectiveness, per_image_values(_given(reconstruction_thickness_errors)), per_image=True),
            "composition_l1": per_image_values(_given(composition_errors)),
        }
    except KeyError:
        pass  # effectiveness without per-image values, or no per-image reconstruction: verdicts without pass rates
    return s


def _figures(effectiveness: dict, reconstruction: Any, per_image: bool) -> dict:
    """The do() sections of a summary from effectiveness results: MAEs and accuracies, or the per-image values behind them."""
    def measured(intervened: str, variable: str, null: bool = False) -> Any:
        item = effectiveness[intervened]["variables"][variable]
        kind = "measured_null" if null else "measured"
        return item[f"{kind}_errors_per_image" if per_image else f"{kind}_mae"]

    def digits(intervened: str) -> Any:
        return effectiveness[intervened]["class_correct_per_image" if per_image else "class_accuracy"]

    return {
        "do_thickness": {
            "thickness_mae": measured("thickness", "thickness"),
            "thickness_null_mae": measured("thickness", "thickness", null=True),
            "intensity_mae": measured("thickness", "intensity"),
            "intensity_null_mae": measured("thickness", "intensity", null=True),
            "digit_accuracy": digits("thickness"),
        },
        "do_intensity": {
            "intensity_mae": measured("intensity", "intensity"),
            "intensity_null_mae": measured("intensity", "intensity", null=True),
            "thickness_mae": measured("intensity", "thickness"),
            "thickness_mae_reconstruction": reconstruction,
            "digit_accuracy": digits("intensity"),
        },
    }


def _given(values: Sequence[float] | np.ndarray | None) -> Sequence[float] | np.ndarray:
    if values is None:
        raise KeyError("per-image values")
    return values


def scores_from_metrics(metrics: dict) -> dict | None:
    """The summary from an evaluation's ``metrics.json``; None unless it is a MorphoMNIST
    evaluation with morphometrics, digit classes and a thickness -> intensity graph."""
    eff = metrics.get("effectiveness", {})
    if not metrics.get("morphometrics") or set(eff) != {"thickness", "intensity"}:
        return None
    if any("class_accuracy" not in e for e in eff.values()) or "measured_mae" not in eff["intensity"]["variables"]["thickness"]:
        return None
    recon = metrics["realism"]["reconstruction"][metrics["settings"]["abduction"]]
    if "thickness" not in recon.get("measured_mae", {}):
        return None
    st, comp = metrics["settings"], metrics["composition"]
    if st["abduction"] == "ddpm":  # exact by construction: score the deterministic round trip
        if "inversion_l1" not in comp:
            return None
        key, via = "inversion_l1", "inversion"
    else:
        key, via = "l1", st["abduction"]
    return summarise(eff, recon["measured_mae"]["thickness"], comp[key][0], via, comp["n"], st["n_used"], st["steps"], metrics.get("oracle"),
                     reconstruction_thickness_errors=recon.get("measured_errors_per_image", {}).get("thickness"),
                     composition_errors=comp.get(f"{key}_per_image"))


def _rate(rate: float | None) -> str:
    return "" if rate is None else f"{100 * rate:.0f}%"


def _header(cells: list[str]) -> list[str]:
    return [("| " + " | ".join(cells) + " |").replace("  ", " "), "|" + "---|" * len(cells)]


def table(s: dict) -> list[str]:
    """The criteria as markdown table lines, with the true counterfactual's scores when ``s`` has them,
    and the share of resamples that pass when ``s`` keeps per-image values."""
    verdict = {True: "pass", False: "FAIL", None: ""}
    oracle = s.get("oracle")
    resampled = "per_image" in s
    rates = pass_rates(s) if resampled else [None] * 6
    if oracle is None:
        lines = _header(["criterion", "measured", "target", ""] + (["resamples passing"] if resampled else []))
        for (name, value, target, ok), rate in zip(criteria(s), rates):
            lines.append(f"| {name} | {value:.3f} | {target} | {verdict[ok]} |" + (f" {_rate(rate)} |" if resampled else ""))
    else:
        o_rates = pass_rates(s, oracle) if resampled and "per_image" in oracle else [None] * 6
        lines = _header(["criterion", "measured", "target", ""] + (["resamples passing"] if resampled else []) + ["true counterfactual", ""]
                        + (["resamples passing"] if resampled else []))
        for (name, value, target, ok), (_, o_value, _, o_ok), rate, o_rate in zip(criteria(s), criteria(s, oracle), rates, o_rates):
            o_text = "n/a" if o_value is None else f"{o_value:.3f}"
            cells = [name, f"{value:.3f}", target, verdict[ok]] + ([_rate(rate)] if resampled else []) + [o_text, verdict[o_ok]]
            cells += [_rate(o_rate)] if resampled else []
            lines.append("| " + " | ".join(cells) + " |")
        lines += [
            "",
            f"*True counterfactual*: the dataset's generator redraws the same {oracle['n']} digits from their real MNIST "
            f"originals with the counterfactual labels (`evaluation/oracle.py`), measured with the same morphometrics: what an "
            f"exact model would score. Unedited digits measure thickness MAE {oracle['unedited']['thickness_mae']:.3f} against their labels.",
        ]
        if "image_l1" in oracle:
            lines += ["", distance_line(oracle["image_l1"])]
    if resampled:
        lines += ["", f"*Resamples passing*: the share of {RESAMPLES:,} bootstrap resamples of the scored digits (drawn with replacement; "
                  "a value and its target from the same digits) in which the criterion holds. Near 0% or 100% the verdict is beyond "
                  "the sampling noise of these digits; near 50% a redraw of digits could turn it. It does not cover other draws of "
                  "intervention values or of abduction noise."]
    return lines


def draw_resamples(s: dict, path: str | Path) -> Path | None:
    """The criteria's resampled margins, the model's and the true counterfactual's (``figures.resample_strips``);
    None (nothing drawn) without per-image values."""
    from causaldiffae.evaluation.figures import resample_strips

    if "per_image" not in s:
        return None
    series = {"model": resampled_margins(s)}
    if "per_image" in s.get("oracle", {}):
        series["true counterfactual"] = resampled_margins(s, s["oracle"])
    return resample_strips([name for name, *_ in criteria(s)], series, path,
                           title=f"the bar over {RESAMPLES:,} resamples of the {s['n']} scored digits")


def verdict_lines(s: dict) -> list[str]:
    """The criteria as console lines (pass / FAIL, value, target, the share of resamples that pass and the
    true counterfactual's), then the model's distance to the true counterfactual images where known."""
    oracle = s.get("oracle")
    rows, rates = criteria(s), pass_rates(s)
    o_rows = criteria(s, oracle) if oracle is not None else [(name, None, target, None) for name, _, target, _ in rows]
    o_rates = pass_rates(s, oracle) if oracle is not None else [None] * len(rows)

    def passing(rate: float | None) -> str:
        return "" if rate is None else f", {_rate(rate)} of resamples pass"

    lines = []
    for (name, value, target, ok), (_, o_value, _, o_ok), rate, o_rate in zip(rows, o_rows, rates, o_rates):
        floor = "" if o_value is None else f"; the true counterfactual: {o_value:.3f} {'pass' if o_ok else 'FAIL'}{passing(o_rate)}"
        lines.append(f"{'pass' if ok else 'FAIL'}  {name}: {value:.3f} (target {target}{passing(rate)}{floor})")
    if "per_image" in s:
        lines.append(f"(resamples passing: of {RESAMPLES:,} bootstrap resamples of the scored digits, the share that pass; "
                     "near 50% a verdict is within the noise)")
    if oracle is not None and "image_l1" in oracle:
        lines.append(distance_line(oracle["image_l1"]))
    return lines


def distance_line(image_l1: dict) -> str:
    """The model's pixel distance to the true counterfactual images, beside the unedited digit's."""
    parts = [f"do({v}) {d['model']:.4f} (unedited {d['null']:.4f})" for v, d in image_l1.items()]
    return "Distance to the true counterfactual image (mean abs. pixel difference, pixels in [0,1]): " + "; ".join(parts) + "."

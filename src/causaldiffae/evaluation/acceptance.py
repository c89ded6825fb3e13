"""The bar the shipped MorphoMNIST model is held to, scored from the demo or from ``causaldiffae evaluate``.

Both produce the same summary (``scores``): morphometric MAE of the intervened variable and its
descendant under do(thickness), of intensity and of the preserved thickness under do(intensity)
(beside the thickness error of plain reconstructions), digit accuracy of the counterfactuals and
the pixel change of one null intervention. ``criteria`` turns it into pass/fail rows.

The null intervention is scored through DDIM inversion when the evaluated abduction is ``ddpm``:
its abducted residuals return the image exactly by construction, so that row could not fail.
"""

from __future__ import annotations

from typing import Callable

Row = tuple[str, float | None, str, bool | None]
"""``(criterion, measured, target, passed)``; ``measured`` and ``passed`` are None without a value."""


def criteria(s: dict, measured: dict | None = None) -> list[Row]:
    """``(criterion, measured, target, passed)`` rows.

    Targets always come from ``s`` (the model's null baselines and reconstructions); ``measured``
    (default ``s``) may be another summary of the same shape, such as ``s["oracle"]`` (the true
    counterfactual), whose rows without a value are None.
    """
    m = s if measured is None else measured
    t, i = s["do_thickness"], s["do_intensity"]
    mt, mi = m["do_thickness"], m["do_intensity"]
    digit = min(mt["digit_accuracy"], mi["digit_accuracy"]) if "digit_accuracy" in mt else None
    l1 = m.get("composition_l1")
    via = {"inversion": "DDIM inversion"}.get(s["composition_abduction"], s["composition_abduction"])

    def row(name: str, value: float | None, target: str, bound: float,
            test: Callable[[float, float], bool] = lambda v, b: v <= b) -> Row:
        return (name, value, target, None if value is None else bool(test(value, bound)))

    return [
        row("do(thickness): thickness MAE (morphometric)", mt["thickness_mae"], f"<= 0.5 x null = {0.5 * t['thickness_null_mae']:.3f}", 0.5 * t["thickness_null_mae"]),
        row("do(thickness): descendant intensity MAE", mt["intensity_mae"], f"< null = {t['intensity_null_mae']:.2f}", t["intensity_null_mae"], lambda v, b: v < b),
        row("do(intensity): intensity MAE (morphometric)", mi["intensity_mae"], f"<= 0.5 x null = {0.5 * i['intensity_null_mae']:.2f}", 0.5 * i["intensity_null_mae"]),
        row("do(intensity): thickness error (preserved)", mi["thickness_mae"], f"<= 1.2 x reconstruction = {1.2 * i['thickness_mae_reconstruction']:.3f}", 1.2 * i["thickness_mae_reconstruction"]),
        row("digit identity kept (classifier)", digit, ">= 0.90", 0.90, lambda v, b: v >= b),
        row(f"one null intervention ({via}, {s['composition_n']} images), mean abs. pixel change", l1, "<= 0.03", 0.03),
    ]


def summarise(
    effectiveness: dict,
    reconstruction_thickness_mae: float,
    composition_l1: float,
    composition_abduction: str,
    composition_n: int,
    n: int,
    steps: int,
    oracle: dict | None = None,
) -> dict:
    """The summary from ``evaluation.metrics.effectiveness`` results (with morphometrics and classes),
    the measured thickness error of reconstructions and the pixel change (pixels in [0, 1]) of one
    null intervention through ``composition_abduction`` on ``composition_n`` images; ``oracle``
    (``evaluation.oracle.morphomnist_oracle_scores`` on the same digits and values) is kept as is."""
    thick, inten = effectiveness["thickness"], effectiveness["intensity"]
    tv, iv = thick["variables"], inten["variables"]
    return {
        "n": int(n),
        "steps": int(steps),
        "do_thickness": {
            "thickness_mae": tv["thickness"]["measured_mae"],
            "thickness_null_mae": tv["thickness"]["measured_null_mae"],
            "intensity_mae": tv["intensity"]["measured_mae"],
            "intensity_null_mae": tv["intensity"]["measured_null_mae"],
            "digit_accuracy": thick["class_accuracy"],
        },
        "do_intensity": {
            "intensity_mae": iv["intensity"]["measured_mae"],
            "intensity_null_mae": iv["intensity"]["measured_null_mae"],
            "thickness_mae": iv["thickness"]["measured_mae"],
            "thickness_mae_reconstruction": reconstruction_thickness_mae,
            "digit_accuracy": inten["class_accuracy"],
        },
        "composition_l1": composition_l1,
        "composition_abduction": composition_abduction,
        "composition_n": int(composition_n),
        **({"oracle": oracle} if oracle is not None else {}),
    }


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
        l1, via = comp["inversion_l1"][0], "inversion"
    else:
        l1, via = comp["l1"][0], st["abduction"]
    return summarise(eff, recon["measured_mae"]["thickness"], l1, via, comp["n"], st["n_used"], st["steps"], metrics.get("oracle"))


def table(s: dict) -> list[str]:
    """The criteria as markdown table lines, with the true counterfactual's scores when ``s`` has them."""
    verdict = {True: "pass", False: "FAIL", None: ""}
    oracle = s.get("oracle")
    if oracle is None:
        lines = ["| criterion | measured | target | |", "|---|---|---|---|"]
        for name, value, target, ok in criteria(s):
            lines.append(f"| {name} | {value:.3f} | {target} | {verdict[ok]} |")
        return lines
    lines = ["| criterion | measured | target | | true counterfactual | |", "|---|---|---|---|---|---|"]
    for (name, value, target, ok), (_, o_value, _, o_ok) in zip(criteria(s), criteria(s, oracle)):
        o_text = "n/a" if o_value is None else f"{o_value:.3f}"
        lines.append(f"| {name} | {value:.3f} | {target} | {verdict[ok]} | {o_text} | {verdict[o_ok]} |")
    lines += [
        "",
        f"*True counterfactual*: the dataset's generator redraws the same {oracle['n']} digits from their real MNIST "
        f"originals with the counterfactual labels (`evaluation/oracle.py`), measured with the same morphometrics: what an "
        f"exact model would score. Unedited digits measure thickness MAE {oracle['unedited']['thickness_mae']:.3f} against their labels.",
    ]
    if "image_l1" in oracle:
        lines += ["", distance_line(oracle["image_l1"])]
    return lines


def distance_line(image_l1: dict) -> str:
    """The model's pixel distance to the true counterfactual images, beside the unedited digit's."""
    parts = [f"do({v}) {d['model']:.4f} (unedited {d['null']:.4f})" for v, d in image_l1.items()]
    return "Distance to the true counterfactual image (mean abs. pixel difference, pixels in [0,1]): " + "; ".join(parts) + "."

"""The bar the shipped MorphoMNIST model is held to, scored from the demo or from ``causaldiffae evaluate``.

Both produce the same summary (``scores``): morphometric MAE of the intervened variable and its
descendant under do(thickness), of intensity and of the preserved thickness under do(intensity)
(beside the thickness error of plain reconstructions), digit accuracy of the counterfactuals and
the pixel change of one null intervention. ``criteria`` turns it into pass/fail rows.
"""

from __future__ import annotations


def criteria(s: dict) -> list[tuple[str, float, str, bool]]:
    """``(criterion, measured, target, passed)`` rows."""
    t, i = s["do_thickness"], s["do_intensity"]
    digit = min(t["digit_accuracy"], i["digit_accuracy"])
    return [
        ("do(thickness): thickness MAE (morphometric)", t["thickness_mae"], f"<= 0.5 x null = {0.5 * t['thickness_null_mae']:.3f}", t["thickness_mae"] <= 0.5 * t["thickness_null_mae"]),
        ("do(thickness): descendant intensity MAE", t["intensity_mae"], f"< null = {t['intensity_null_mae']:.2f}", t["intensity_mae"] < t["intensity_null_mae"]),
        ("do(intensity): intensity MAE (morphometric)", i["intensity_mae"], f"<= 0.5 x null = {0.5 * i['intensity_null_mae']:.2f}", i["intensity_mae"] <= 0.5 * i["intensity_null_mae"]),
        ("do(intensity): thickness error (preserved)", i["thickness_mae"], f"<= 1.2 x reconstruction = {1.2 * i['thickness_mae_reconstruction']:.3f}", i["thickness_mae"] <= 1.2 * i["thickness_mae_reconstruction"]),
        ("digit identity kept (classifier)", digit, ">= 0.90", digit >= 0.90),
        ("one null intervention, mean |x' - x| (pixels in [0,1])", s["composition_l1"], "<= 0.03", s["composition_l1"] <= 0.03),
    ]


def summarise(effectiveness: dict, reconstruction_thickness_mae: float, composition_l1: float, n: int, steps: int) -> dict:
    """The summary from ``evaluation.metrics.effectiveness`` results (with morphometrics and classes),
    the measured thickness error of reconstructions and the pixel change of one null intervention."""
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
    }


def scores_from_metrics(metrics: dict) -> dict | None:
    """The summary from an evaluation's ``metrics.json``; None unless it is a MorphoMNIST
    evaluation with morphometrics, digit classes and a thickness -> intensity graph."""
    eff = metrics.get("effectiveness", {})
    if not metrics.get("morphometrics") or set(eff) != {"thickness", "intensity"}:
        return None
    if "class_accuracy" not in eff["thickness"] or "measured_mae" not in eff["intensity"]["variables"]["thickness"]:
        return None
    recon = metrics["realism"]["reconstruction"][metrics["settings"]["abduction"]]
    if "thickness" not in recon.get("measured_mae", {}):
        return None
    st = metrics["settings"]
    return summarise(eff, recon["measured_mae"]["thickness"], metrics["composition"]["l1"][0], st["n_used"], st["steps"])


def table(s: dict) -> list[str]:
    """The criteria as markdown table lines."""
    lines = ["| criterion | measured | target | |", "|---|---|---|---|"]
    for name, value, target, ok in criteria(s):
        lines.append(f"| {name} | {value:.3f} | {target} | {'pass' if ok else 'FAIL'} |")
    return lines

"""``report.md``: the metrics as tables, each figure beside its null baseline, figures embedded."""

from __future__ import annotations

from causaldiffae.evaluation.acceptance import scores_from_metrics, table


def _f(v: object, digits: int = 4) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.{digits}g}"
    return str(v)


def _table(header: list[str], rows: list[list]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_f(c) for c in row) + " |" for row in rows]
    return lines + [""]


def _effect_rows(results: dict, with_measured: bool, std: dict | None = None) -> list[list]:
    rows = []
    for var, entry in results.items():
        for name, item in entry["variables"].items():
            mae = _f(item["mae"])
            if std is not None:
                mae += f" ± {_f(std[var]['variables'][name]['mae'], 2)}"
            row = [f"do({var})", name, item["role"], mae, item["null_mae"]]
            if with_measured:
                row += [item.get("measured_mae"), item.get("measured_null_mae")]
            rows.append(row)
    return rows


def _without_empty_last(header: list[str], rows: list[list]) -> tuple[list[str], list[list]]:
    """Drop the last column when no row has a value there (class accuracy on data without classes)."""
    if all(row[-1] is None for row in rows):
        return header[:-1], [row[:-1] for row in rows]
    return header, rows


def render(metrics: dict) -> str:
    """The report as markdown, from the metrics dict written beside it."""
    sections = (_header, _predictors, _effectiveness, _modes, _composition, _realism, _dci, _sweeps, _extras)
    return "\n".join(line for section in sections for line in section(metrics))


def _scored_split(metrics: dict) -> str:
    """The split the predictors were scored on (``predictors --test-split``)."""
    return metrics["predictors"].get("split", "test")


def _header(metrics: dict) -> list[str]:
    ds, model, st = metrics["dataset"], metrics["model"], metrics["settings"]
    scored = _scored_split(metrics)
    held_out = ", the images they were trained on: not a held-out error" if scored == "train" else ""
    return [
        f"# Counterfactual evaluation: {model['variant']} on {ds['name']}",
        "",
        f"Model: `{model['variant']}`, {model['trained_steps']} training steps, "
        f"null condition: {'yes' if model['has_null_condition'] else 'no'}, classes: {model['num_classes']}. "
        f"Data: {ds['name']} `{ds['split']}` split ({ds['n_test']} images), variables {', '.join(ds['variables'])}, "
        f"edges {'; '.join(f'{a} -> {b}' for a, b in ds['edges']) or 'none'}.",
        f"Settings: {st['n_used']} images, {st['seeds']} seed(s), {st['steps']} DDIM steps ({st.get('spacing', 'uniform')} spacing), "
        f"w={st['w']:g} ({st.get('guidance', 'null')} guidance), "
        f"mode `{st['mode']}`, abduction `{st['abduction']}`" + (f", from {st['start']:g} of the noise levels." if st.get("start", 1.0) != 1.0 else "."),
        "",
        "Values are read off the images by the anti-causal predictors (trained on the train split; "
        f"{scored} scores below{held_out}). *Null* is the unedited image read by the same instrument, the score of doing nothing.",
        "",
    ]


def _predictors(metrics: dict) -> list[str]:
    pm, scored = metrics["predictors"], _scored_split(metrics)
    rows = [[v, pm["mae"][v]] for v in metrics["dataset"]["variables"]]
    if "accuracy" in pm:
        rows.append(["class accuracy", pm["accuracy"]])
    return [f"## Predictors ({scored} split)", ""] + _table(["variable", f"{scored} MAE"], rows)


def _effectiveness(metrics: dict) -> list[str]:
    """Each intervention's MAE beside its null baseline, identity preservation, and the shipped model's bar."""
    split = metrics["dataset"]["split"]  # the evaluated split (test unless --split said otherwise)
    figs = metrics.get("figures", {})
    out = ["## Effectiveness and preservation", ""]
    out.append(
        f"Intervention values are a shuffled copy of the {split} labels (the {split} marginal); MAE in natural units "
        + ("against the true counterfactual of the dataset's SCM" if metrics["scm"] else
           "against the intervened value and, for non-descendants, the factual label (no SCM: descendants, whose "
           "counterfactual values are unknown, are skipped)")
        + ". Non-descendants should keep their factual value (preservation)."
    )
    out.append("")
    measured = bool(metrics["morphometrics"])
    header = ["intervention", "variable", "role", "MAE", "null MAE"] + (["measured MAE", "measured null MAE"] if measured else [])
    out += _table(header, _effect_rows(metrics["effectiveness"], measured, metrics.get("effectiveness_std")))
    acc_rows = [[f"do({var})", e["class_accuracy"], e["null_class_accuracy"]] for var, e in metrics["effectiveness"].items() if "class_accuracy" in e]
    if acc_rows:
        out += ["Identity preservation (digit read by the classifier):", ""]
        out += _table(["intervention", "class accuracy", "null"], acc_rows)
    bar = scores_from_metrics(metrics)
    if bar is not None:
        draws = metrics["settings"]["seeds"]
        abduction = metrics["settings"]["abduction"]
        via = "" if bar["composition_abduction"] == abduction else (
            f"; the null intervention row through DDIM inversion, as the `{abduction}` abduction returns the image exactly by construction")
        out += ["The bar a shipped MorphoMNIST model is held to (morphometric measurement, digit classifier; "
                "reconstruction = the null intervention through the same abduction" + via
                + (f"; model and true counterfactual averaged over the same {draws} draws of values" if draws > 1 else "") + "):", ""]
        out += table(bar) + [""]
        if "bar_resamples" in figs:
            out += [f"![the bar over resamples]({figs['bar_resamples']})", ""]
    thr = metrics["throughput"]
    out += [f"Throughput: {thr['counterfactuals_per_s']:.3g} counterfactuals/s while scoring effectiveness (abduction, decoding at {thr['steps']} steps, "
            "and reading each image's values).", ""]
    for var in metrics["dataset"]["variables"]:
        if f"grid_{var}" in figs:
            out += [f"![do({var})]({figs[f'grid_{var}']})", ""]
    return out


def _modes(metrics: dict) -> list[str]:
    comp, split = metrics["comparison"], metrics["dataset"]["split"]
    out = ["## Abduction and intervention mode", ""]
    out.append(f"Effectiveness on {comp['n']} of the {split} images, the six combinations on one draw of intervention values of "
               "their own: compare the rows with each other, not with the table above (other images and values).")
    out.append("")
    rows = []
    for key, res in comp["results"].items():
        for var, entry in res.items():
            for name, item in entry["variables"].items():
                rows.append([key, f"do({var})", name, item["role"], item["mae"], item["null_mae"], entry.get("class_accuracy")])
    return out + _table(*_without_empty_last(["abduction/mode", "intervention", "variable", "role", "MAE", "null MAE", "class acc."], rows))


def _composition(metrics: dict) -> list[str]:
    comp, split, figs = metrics["composition"], metrics["dataset"]["split"], metrics.get("figures", {})
    out = ["## Composition and reversibility", ""]
    rows = [[f"L1 ({comp['abduction']})"] + comp["l1"]]
    if "inversion_l1" in comp:
        rows.append(["L1 (inversion)"] + comp["inversion_l1"])
    out += _table(["m"] + [str(i) for i in range(1, len(comp["l1"]) + 1)], rows)
    out.append(
        f"L1 between the original and the null intervention applied m times (pixels in [0, 1]) on {comp['n']} {split} images; "
        "null baseline 0. Intervening back goes to the value the model reads off the image."
    )
    if comp["abduction"] == "ddpm":
        out.append("`ddpm` abduction stores the residuals that reproduce the image, so its null intervention is exact by construction; "
                   "the inversion row shows what composing costs a deterministic abduction.")
    out.append("")
    rows = [[f"do({v})", r["l1_there"], r["l1_back"]] for v, r in metrics["reversibility"].items()]
    out += _table(["intervention", "L1 after intervening", "L1 after intervening back"], rows)
    if "composition" in figs:
        out += [f"![composition]({figs['composition']})", ""]
    return out


def _realism(metrics: dict) -> list[str]:
    """Frechet distances with their caveats, then the reconstruction errors."""
    ds, st, real = metrics["dataset"], metrics["settings"], metrics["realism"]
    split, ref = ds["split"], real["reference"]
    out = ["## Realism", ""]
    out += _table(
        ["images", f"Frechet distance to {ref['n']} {ref['split']} images"],
        [[f"unedited {split} images (real, " + ("not in the reference" if split == "train" else "held out") + ": the floor)",
          real["frechet_unedited"]]]
        + [[f"counterfactuals, do({v})", d] for v, d in real["frechet_counterfactual"].items()]
        + [[f"true counterfactuals, do({v}) (the dataset's generator)", d] for v, d in real.get("frechet_true_counterfactual", {}).items()]
        + [[f"reconstructions ({k})", v["frechet"]] for k, v in real["reconstruction"].items()],
    )
    caveat = (
        f"**With {ref['n']} images per set for {ref['features']} features the covariances are singular: the distances "
        f"only rank this table's rows and mean little on their own (evaluate on several times {ref['features']} images).** "
        if ref["n"] <= ref.get("features", 0) else ""
    )
    sizes = (
        "Every row holds as many images as the reference, none of them made from it, so the distance's small-sample bias is shared."
        if ref["n"] == st["n_used"] else
        f"Every row holds {st['n_used']} images, none of them made from the reference, which has only {ref['n']}: the rows share their "
        "small-sample bias with each other, not with the reference."
    )
    out.append(
        caveat + f"Features: the predictors' penultimate layers. {sizes} Reconstruction error (abduct with the factual latent, decode):"
    )
    out.append("")
    rec = real["reconstruction"]
    cols = [f"MAE {v}" for v in ds["variables"]]
    measured_cols = [f"measured MAE {v}" for v in ds["variables"] if any(v in r.get("measured_mae", {}) for r in rec.values())]
    out += _table(
        ["abduction", "L1 (pixels in [0,1])", "MSE"] + cols + measured_cols,
        [[k, r["l1"], r["mse"]] + [r.get("mae", {}).get(v) for v in ds["variables"]]
         + [r.get("measured_mae", {}).get(c.removeprefix("measured MAE ")) for c in measured_cols] for k, r in rec.items()],
    )
    return out


def _dci(metrics: dict) -> list[str]:
    ds, figs = metrics["dataset"], metrics.get("figures", {})
    split = ds["split"]
    out = ["## Disentanglement (DCI)", ""]
    if metrics.get("dci"):
        rows = [
            [level, d["method"], d["disentanglement"], d["completeness"], d["informativeness_r2"],
             ", ".join(f"{v}: {x:.3f}" for v, x in zip(ds["variables"], d["r2"]))]
            for level, d in metrics["dci"].items()
        ]
        out += _table(["codes", "regressor", "disentanglement", "completeness", f"informativeness ({split} R²)", "R² per factor"], rows)
        fitted = next(iter(metrics["dci"].values())).get("n_train")  # absent from reports written before it was recorded
        out.append("`dims`: every latent dimension is a code; `blocks`: the mean of each variable's block. "
                   f"Regressors fit {f'{fitted} ' if fitted else ''}train-split codes; informativeness is R² on the {split} split"
                   + (" (its images the regressors did not fit)." if split == "train" else "."))
        out.append("")
    else:
        out += ["Not applicable: the label-conditional model has no encoder.", ""]
    if "latent_pca" in figs:
        out += [f"![latent PCA]({figs['latent_pca']})", ""]
    return out


def _sweeps(metrics: dict) -> list[str]:
    """The DDIM steps sweep and the guidance sweep, each with its figures."""
    variables, st, figs = metrics["dataset"]["variables"], metrics["settings"], metrics.get("figures", {})
    out = ["## Sweeps", ""]
    rows = []
    for n_steps, entry in metrics["steps_sweep"].items():
        for var, res in entry["results"].items():
            item = res["variables"][var]
            rows.append([n_steps, f"do({var})", item["mae"], item["null_mae"], entry["seconds"]])
    out += _table(["DDIM steps", "intervention", "MAE (intervened)", "null MAE", "seconds (all interventions)"], rows)
    for var in variables:
        if f"steps_{var}" in figs:
            out += [f"![steps do({var})]({figs[f'steps_{var}']})", ""]
    if not metrics["guidance_sweep"]:
        return out + ["Guidance sweep skipped: the model was trained without a null condition, so only w=1 is defined "
                      "for `null` guidance (`--guidance factual` needs none).", ""]
    rows = []
    for w, res in metrics["guidance_sweep"].items():
        for var, entry in res.items():
            for name, item in entry["variables"].items():
                rows.append([w, f"do({var})", name, item["mae"], item["null_mae"], entry.get("class_accuracy")])
    out += [f"Guidance away from the {st.get('guidance', 'null')} condition.", ""]
    out += _table(*_without_empty_last(["w", "intervention", "variable", "MAE", "null MAE", "class acc."], rows))
    for var in variables:
        if f"guidance_sweep_{var}" in figs:
            out += [f"![guidance do({var})]({figs[f'guidance_sweep_{var}']})", ""]
    if "guidance_images" in figs:
        out += [f"![guidance_images]({figs['guidance_images']})", ""]
    return out


def _extras(metrics: dict) -> list[str]:
    """The sections only some reports have: latent traversal, training curves, timings."""
    figs, out = metrics.get("figures", {}), []
    if "traversal" in figs:
        out += ["## Latent traversal", "", f"![traversal]({figs['traversal']})", ""]
    if "training" in figs:
        out += ["## Training", "", "The run's loss terms as it trained (its `metrics.jsonl`).", "", f"![training curves]({figs['training']})", ""]
    timings = metrics.get("timings", {})
    if timings:
        out += ["## Timings", ""] + _table(["section", "seconds"], [[k.removesuffix("_s"), v] for k, v in timings.items()])
    return out

"""The evaluate command end to end on a tiny run, a user folder and MorphoMNIST."""

import csv
import json
import shutil

import numpy as np
import pytest
from cli_fixtures import error_lines, read_rows

import causaldiffae.counterfactual as cf
from causaldiffae.checkpoint import load_run, read_config
from causaldiffae.cli import main
from causaldiffae.evaluation.report import render
from causaldiffae.models import CausalDiffAE
from causaldiffae.training import train


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--batch-size", "0"], "--batch-size must be at least 1, got 0"),
        (["--n-small", "1"], "--n-small must be at least 2, got 1"),
        (["--seeds", "0"], "--seeds must be at least 1, got 0"),
        (["--steps", "1"], "steps must be an integer in 2..100, got 1"),
        (["--sweep-w", "1,nan"], "--sweep-w values must be finite, got 1, nan"),
    ],
)
def test_evaluate_bad_options_are_one_line_before_sampling(setup, capsys, monkeypatch, extra, message):
    _, data, run, pred = setup
    monkeypatch.setattr(CausalDiffAE, "eps", lambda *a, **k: pytest.fail("sampling started"))  # every counterfactual calls it, in abduction or decoding
    out = setup[0] / "bad-eval"
    argv = ["evaluate", "--run", str(run), "--predictors", str(pred), "--data", str(data), "--out", str(out), "--quick", "--no-progress", *extra]
    assert main(argv) == 2
    errors = error_lines(capsys)
    assert len(errors) == 1 and message in errors[0], errors
    assert not out.exists()


@pytest.mark.parametrize("changes, message", [({"dataset": "mnist", "label_mean": [0.0, 0.0]}, "trained on dataset 'mnist'"), ({"edges": []}, "graph edges")])
def test_evaluate_refuses_predictors_of_another_dataset_or_graph(setup, capsys, tmp_path, changes, message):
    _, data, run, pred = setup
    other = tmp_path / "pred"
    shutil.copytree(pred, other)
    meta = json.loads((other / "predictors.json").read_text())
    meta.update(changes)
    (other / "predictors.json").write_text(json.dumps(meta))
    argv = ["evaluate", "--run", str(run), "--predictors", str(other), "--data", str(data), "--out", str(tmp_path / "r"), "--quick", "--no-progress"]
    assert main(argv) == 2
    errors = error_lines(capsys)
    assert len(errors) == 1 and message in errors[0], errors
    assert not (tmp_path / "r").exists()


def test_evaluate_quick_writes_metrics_report_and_figures(setup, capsys):
    base, data, run, pred = setup
    out = base / "report"
    argv = ["evaluate", "--run", str(run), "--predictors", str(pred), "--data", str(data), "--out", str(out),
            "--quick", "--n", "6", "--n-small", "4", "--steps", "3", "--sweep-steps", "2,3", "--dci", "lasso", "--no-progress"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "on codes of 32 train / 16 test images" in printed and "note: --n" not in printed
    metrics = json.loads((out / "metrics.json").read_text())
    eff = metrics["effectiveness"]
    assert set(eff) == {"a", "b"}
    assert set(eff["a"]["variables"]) == {"a"}  # no SCM for a user folder: the descendant b is skipped
    assert eff["b"]["variables"]["a"]["role"] == "non-descendant"
    assert set(metrics["comparison"]["results"]) == {f"{a}/{m}" for a in ("inversion", "ddpm", "stochastic") for m in ("set", "shift")}
    assert len(metrics["composition"]["l1"]) == 4 and metrics["composition"]["n"] == 4
    assert len(metrics["composition"]["inversion_l1"]) == 4  # the default ddpm abduction composes exactly by construction
    realism = metrics["realism"]
    assert realism["reference"]["split"] == "train" and realism["reference"]["n"] == 6  # as many as counterfactuals per intervention
    assert realism["reference"]["features"] > 6 and "covariances are singular" in (out / "report.md").read_text()
    assert set(realism["frechet_counterfactual"]) == {"a", "b"} and realism["frechet_unedited"] > 0
    assert metrics["dci"]["blocks"]["method"] == "lasso"
    assert set(metrics["realism"]["reconstruction"]["inversion"]["mae"]) == {"a", "b"}
    assert metrics["guidance_sweep"] == {}  # no null condition: only w = 1
    for rel in metrics["figures"].values():
        assert (out / rel).is_file(), rel
    assert {"grid_a", "grid_b", "traversal", "latent_pca", "steps_a", "composition", "training"} <= set(metrics["figures"])
    assert (run / "curves.png").is_file()  # train draws the same curves into the run folder
    report = (out / "report.md").read_text()
    assert "![training curves](figures/training.png)" in report
    assert "null MAE" in report and "![do(a)](figures/grid_a.png)" in report
    assert "against the intervened value and, for non-descendants, the factual label (no SCM" in report
    assert "class acc." not in report  # the blobs have no classes: no column of dashes
    assert "Regressors fit 32 train-split codes" in report and metrics["dci"]["blocks"]["n_test"] == 16
    metrics["guidance_sweep"] = {"1.0": metrics["effectiveness"], "2.0": metrics["effectiveness"]}
    assert "Guidance away from the null condition." in render(metrics)  # the section a null-condition model gets
    assert "shuffled copy of the test labels" in report
    val = render({**metrics, "dataset": {**metrics["dataset"], "split": "val"}})  # evaluate --split val
    assert "shuffled copy of the val labels" in val and "informativeness is R² on the val split" in val and " test images" not in val
    few = render({**metrics, "realism": {**realism, "reference": {**realism["reference"], "n": 3}}})  # --n above the train split's size
    assert "Every row holds 6 images, none of them made from the reference, which has only 3" in few and "Every row holds as many" not in few
    assert "## Predictors (test split)" in report and "| variable | test MAE |" in report
    on_train = render({**metrics, "predictors": {**metrics["predictors"], "split": "train"}})  # predictors --test-split train
    assert "## Predictors (train split)" in on_train and "| variable | train MAE |" in on_train and "not a held-out error" in on_train
    assert main(argv) == 2 and "already exists" in capsys.readouterr().err


def test_evaluate_plots_guidance_for_the_scored_variables_of_a_folder_without_scm(setup, tmp_path, capsys, monkeypatch):
    import causaldiffae.evaluation.pipeline as pipeline
    import causaldiffae.progress as progress

    seen = {}  # the small subset (composition's images) and the guidance figure's rows
    real_composition, real_grid = pipeline.composition_errors, pipeline.figures.image_grid
    monkeypatch.setattr(pipeline, "composition_errors", lambda fn, xs, *a, **k: seen.setdefault("small", xs) is None or real_composition(fn, xs, *a, **k))
    monkeypatch.setattr(pipeline.figures, "image_grid", lambda rows, path, **k: seen.__setitem__(path.name, rows) or real_grid(rows, path, **k))
    real_line = pipeline.figures.line_plot  # each sweep figure's series and title
    monkeypatch.setattr(pipeline.figures, "line_plot", lambda x, series, path, **k: seen.__setitem__(path.name, (series, k["title"])) or real_line(x, series, path, **k))
    base, data, run, pred = setup
    config = read_config(run).with_overrides(["model.cond_drop_prob=0.3"])
    guided_run = train(config, data, tmp_path / "run", progress=False)
    out = tmp_path / "report"
    argv = ["evaluate", "--run", str(guided_run), "--predictors", str(pred), "--data", str(data), "--out", str(out),
            "--quick", "--n", "99", "--n-small", "4", "--steps", "3", "--sweep-steps", "3", "--sweep-w", "1,2", "--dci", "lasso"]
    bars = []  # every section that makes counterfactuals batch after batch shows a (transient) bar
    real_bar = progress.bar

    def recording_bar(items=None, *, desc, leave=True, **k):
        if leave:  # the data loaders' lasting bars
            return real_bar(items, desc=desc, leave=leave, **k)
        bars.append(desc)
        return items

    monkeypatch.setattr(progress, "bar", recording_bar)
    assert main(argv) == 0
    assert {"composition", "reversibility", "abduction x mode", "steps sweep", "guidance sweep"} <= set(bars)
    assert bars.count("composition") == 2  # the ddpm abduction's and the inversion's, each under its own bar
    assert "note: --n 99, but the test split has 16 images: scoring all 16" in capsys.readouterr().out
    originals = [row[0] for row in seen["guidance_images.png"]]  # the images the sweep edited, not the first of the draw
    assert all(np.array_equal(o, seen["small"][i].numpy()) for i, o in enumerate(originals))
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["guidance_sweep"]) == {"1.0", "2.0"}
    assert set(metrics["guidance_sweep"]["2.0"]["a"]["variables"]) == {"a"}  # the effect b has no SCM to score it
    report = (out / "report.md").read_text()
    for var in ("a", "b"):  # one figure per intervention, in the report
        assert (out / metrics["figures"][f"guidance_sweep_{var}"]).is_file()
        assert f"![guidance do({var})](figures/guidance_sweep_{var}.png)" in report
        series, title = seen[f"guidance_sweep_{var}.png"]  # do(var)'s own effects, not the first variable's
        assert title == f"effectiveness vs guidance, do({var})"
        assert [name.split(" (")[0] for name in series] == list(metrics["guidance_sweep"]["2.0"][var]["variables"])
    assert "![guidance_images](figures/guidance_images.png)" in report


def test_evaluate_on_morphomnist_scores_the_bar_beside_the_true_counterfactual(tmp_path, capsys):
    from causaldiffae.data.morphomnist import generate
    from causaldiffae.demo import WEIGHTS

    data = generate(tmp_path / "mm", workers=1, seed=0, limit=12, progress=False)
    out = tmp_path / "report"
    argv = ["evaluate", "--run", str(WEIGHTS), "--predictors", str(WEIGHTS / "predictors"), "--data", str(data), "--out", str(out),
            "--quick", "--n", "6", "--n-small", "4", "--steps", "3", "--sweep-steps", "3", "--sweep-w", "1", "--dci", "lasso",
            "--seeds", "2", "--no-progress"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    # the bar's six verdicts on the console as the demo prints them, each with its share of resamples passing
    assert printed.count("% of resamples pass") == 6 + 4 and "do(intensity): thickness error (preserved)" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    oracle, spread = metrics["oracle"], metrics["oracle_std"]
    # the true counterfactual is scored on both draws of values, like the model: same digits, other targets
    assert spread["unedited"]["thickness_mae"] == 0 and spread["do_thickness"]["thickness_mae"] > 0
    assert metrics["effectiveness_std"]["thickness"]["variables"]["thickness"]["mae"] > 0
    # each digit's errors, averaged over the two draws, stand behind the bar's resampled pass rates; they have no spread of their own
    kept = metrics["effectiveness"]["intensity"]["variables"]["thickness"]
    assert len(kept["measured_errors_per_image"]) == 6 and np.mean(kept["measured_errors_per_image"]) == pytest.approx(kept["measured_mae"], rel=1e-4)
    assert "measured_errors_per_image" not in metrics["effectiveness_std"]["intensity"]["variables"]["thickness"]
    assert len(oracle["per_image"]["do_intensity"]["thickness_mae"]) == 6 and "per_image" not in spread
    assert len(metrics["composition"]["inversion_l1_per_image"]) == 4
    assert oracle["n"] == 6 and oracle["do_thickness"]["thickness_mae"] < 0.1 and oracle["do_intensity"]["intensity_mae"] <= 1.0
    # the model's counterfactuals are nearer the true images than the unedited digits are
    assert all(0 < d["model"] < d["null"] for d in oracle["image_l1"].values())
    report = (out / "report.md").read_text()
    assert "Distance to the true counterfactual image" in report
    assert "| criterion | measured | target | | resamples passing | true counterfactual | | resamples passing |" in report
    assert "do(intensity): thickness error (preserved)" in report
    assert (out / metrics["figures"]["bar_resamples"]).is_file() and "![the bar over resamples](figures/bar_resamples.png)" in report
    assert "averaged over the same 2 draws of values" in report
    true_fd = metrics["realism"]["frechet_true_counterfactual"]
    assert set(true_fd) == {"thickness", "intensity"} and all(v > 0 for v in true_fd.values())
    assert "true counterfactuals, do(intensity) (the dataset's generator)" in report
    assert metrics["settings"]["spacing"] == "quadratic" and "(quadratic spacing)" in report  # the shipped config's


def test_evaluate_converts_values_with_the_runs_label_statistics_not_the_datas(setup, capsys, tmp_path, monkeypatch):
    import causaldiffae.evaluation.pipeline as pipeline

    _, data, run, pred = setup
    shifted = tmp_path / "blobs"
    shutil.copytree(data, shifted)
    rows = read_rows(data / "labels.csv")
    for r in rows:
        r["b"] = str(float(r["b"]) + 30)  # the same images, labels another build might give: other train-set statistics
    with open(shifted / "labels.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    seen = []
    real = pipeline.model_counterfactual_fn
    monkeypatch.setattr(pipeline, "model_counterfactual_fn", lambda *a, **k: seen.append(k["label_mean"]) or real(*a, **k))
    argv = ["evaluate", "--run", str(run), "--predictors", str(pred), "--data", str(shifted), "--out", str(tmp_path / "r"),
            "--quick", "--n", "4", "--n-small", "4", "--steps", "2", "--sweep-steps", "2", "--dci", "lasso", "--no-progress"]
    assert main(argv) == 0
    model_mean = cf.label_stats(load_run(run)[0])[0]
    assert seen and all(np.array_equal(m, model_mean) for m in seen)
    assert "label statistics differ from the run's" in capsys.readouterr().out


@pytest.mark.parametrize("graph, message", [
    ("variables: [b, a]\nedges: [a -> b]\n", "the run orders its variables a, b, the data b, a"),
    ("variables: [a, b]\nedges: []\n", "the run's graph (a -> b) differs from the data's (a, b)"),
])
def test_evaluate_names_a_run_trained_on_another_graph_or_order(setup, capsys, tmp_path, graph, message):
    _, data, run, _ = setup
    changed = tmp_path / "blobs"
    shutil.copytree(data, changed)
    (changed / "graph.yaml").write_text(graph)
    pred = tmp_path / "pred"  # predictors of the changed data, so the run is what disagrees
    assert main(["predictors", "--data", str(changed), "--out", str(pred), "--epochs", "1", "--width", "4", "--no-progress"]) == 0
    argv = ["evaluate", "--run", str(run), "--predictors", str(pred), "--data", str(changed), "--out", str(tmp_path / "r"), "--quick", "--no-progress"]
    assert main(argv) == 2
    errors = error_lines(capsys)
    assert len(errors) == 1 and message in errors[0], errors
    assert not (tmp_path / "r").exists()


def test_evaluating_the_train_split_compares_with_train_images_it_does_not_score(setup, capsys, tmp_path, monkeypatch):
    import causaldiffae.evaluation.pipeline as pipeline
    from causaldiffae.evaluation.metrics import draw_indices

    drawn = set()  # every index set of six train images read, the scored ones and the Frechet reference
    real = pipeline.images_tensor
    monkeypatch.setattr(pipeline, "images_tensor", lambda ds, idx=None: (len(idx) == 6 and drawn.add(tuple(idx))) or real(ds, idx))
    _, data, run, pred = setup
    argv = ["evaluate", "--run", str(run), "--predictors", str(pred), "--data", str(data), "--out", str(tmp_path / "r"), "--split", "train",
            "--quick", "--n", "6", "--n-small", "4", "--steps", "3", "--sweep-steps", "3", "--dci", "lasso", "--no-progress"]
    assert main(argv) == 0
    assert "on codes of 16 train / 16 train images (the train images not fitted)" in capsys.readouterr().out  # 32 train images
    scored = tuple(draw_indices(np.random.default_rng(0), 32, 6))
    assert scored in drawn and len(drawn) == 2
    reference, = drawn - {scored}
    assert not set(reference) & set(scored)
    report = (tmp_path / "r" / "report.md").read_text()
    assert "informativeness is R² on the train split (its images the regressors did not fit)" in report
    refused = [str(tmp_path / "r2") if a == str(tmp_path / "r") else a for a in argv]
    refused[refused.index("--n") + 1] = "31"
    assert main(refused) == 2 and "--split train: --n 31 leaves fewer than 2 of the 32 train images" in capsys.readouterr().err


def test_a_grid_s_reconstruction_column_comes_from_the_abduction_of_its_edits(setup, tmp_path, monkeypatch):
    """With the stochastic abduction each abduction draws its own x_T: the column beside the edits must be theirs."""
    import torch

    import causaldiffae.evaluation.pipeline as pipeline

    grids = {}
    real_grid = pipeline.figures.image_grid
    monkeypatch.setattr(pipeline.figures, "image_grid", lambda rows, path, **k: grids.__setitem__(path.name, rows) or real_grid(rows, path, **k))
    _, data, run, pred = setup
    argv = ["evaluate", "--run", str(run), "--predictors", str(pred), "--data", str(data), "--out", str(tmp_path / "r"), "--abduction", "stochastic",
            "--quick", "--n", "6", "--n-small", "4", "--steps", "3", "--sweep-steps", "3", "--dci", "lasso", "--no-progress"]
    assert main(argv) == 0
    rows = grids["grid_a.png"]
    model, _ = load_run(run)
    x = torch.from_numpy(np.stack([row[0] for row in rows]))
    abd = cf.abduct(model, x, steps=3, abduction="stochastic", generator=torch.Generator().manual_seed(0))
    (null, _, _), = cf.decode_interventions(model, abd, [{}], label_mean=model.label_mean.numpy(), label_std=model.label_std.numpy())
    np.testing.assert_allclose(np.stack([row[1] for row in rows]), null.numpy(), atol=1e-5)
    assert np.abs(null.numpy() - x.numpy()).mean() > 0.01  # a fresh x_T: the reconstruction is not the image itself


def test_force_replaces_only_an_earlier_report_and_never_the_run_or_predictors(setup, capsys, tmp_path):
    _, data, run, pred = setup
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "metrics.json").write_text('{"AP": 41.2}')  # another tool's metrics
    (foreign / "model_final.pth").write_text("weights")
    base = ["evaluate", "--run", str(run), "--predictors", str(pred), "--data", str(data), "--quick", "--no-progress", "--force"]
    assert main([*base, "--out", str(foreign)]) == 2
    assert "holds files but no metrics.json and report.md of this command's, so it is not an earlier output" in capsys.readouterr().err
    assert (foreign / "model_final.pth").read_text() == "weights"
    report = tmp_path / "report"  # an earlier report that a user moved the predictors into
    shutil.copytree(pred, report / "pred")
    (report / "metrics.json").write_text('{"dataset": {}, "effectiveness": {}, "settings": {}}')
    (report / "report.md").write_text("# an evaluation")
    assert main([*base, "--predictors", str(report / "pred"), "--out", str(report)]) == 2
    assert f"holds --predictors {report / 'pred'}, which writing the report would replace" in capsys.readouterr().err
    assert (report / "pred" / "predictors.json").is_file()

"""The predictors, counterfactual and evaluate commands end to end on a tiny run and a user folder."""

import csv
import json
import shutil

import numpy as np
import pytest
from PIL import Image

import causaldiffae.counterfactual as cf
from causaldiffae.checkpoint import load_run, read_config
from causaldiffae.cli import main
from causaldiffae.evaluation.report import render
from causaldiffae.training import train

TINY_MODEL = {
    "latent_block": 4, "encoder_channels": [8, 8], "mechanism_hidden": 8, "base_channels": 8, "channel_mult": [1, 2],
    "layers_per_block": 1, "attention_levels": [], "mid_attention": False, "attention_head_dim": 8, "norm_groups": 8, "class_conditional": False,
}


def make_blobs(root, n=48):
    """8x8 grey blobs: radius ``a`` causes brightness ``b``; 2/3 train, 1/3 test."""
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    yy, xx = np.mgrid[:8, :8]
    lines = ["file,a,b,split"]
    for k in range(n):
        a = rng.uniform(1.0, 3.5)
        b = 100 + 40 * a + rng.normal(0, 8)
        img = np.where((yy - 3.5) ** 2 + (xx - 3.5) ** 2 <= a * a, b, 0).astype(np.uint8)
        Image.fromarray(img).save(root / "images" / f"{k:02d}.png")
        lines.append(f"images/{k:02d}.png,{a},{b},{'test' if k % 3 == 0 else 'train'}")
    (root / "labels.csv").write_text("\n".join(lines) + "\n")
    (root / "graph.yaml").write_text("variables: [a, b]\nedges: [a -> b]\n")


def error_lines(capsys) -> list[str]:
    """The error lines on stderr (the data loaders' progress bars also write there)."""
    return [line for line in capsys.readouterr().err.splitlines() if ": error: " in line]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from causaldiffae.config import ExperimentConfig

    base = tmp_path_factory.mktemp("cfcli")
    data = base / "blobs"
    make_blobs(data)
    config = ExperimentConfig.from_dict(
        {
            "name": "tiny", "model": TINY_MODEL, "diffusion": {"num_train_timesteps": 100, "sample_steps": 10},
            "train": {"steps": 2, "batch_size": 8, "lr": 1e-3, "log_every": 1, "sample_every": 1000, "checkpoint_every": 2,
                      "kl_anneal_steps": 2, "grid_steps": 2},
        },
        "tiny",
    )
    run = train(config, data, base / "run", progress=False)
    pred = base / "pred"
    assert main(["predictors", "--data", str(data), "--out", str(pred), "--epochs", "1", "--width", "4", "--no-progress"]) == 0
    return base, data, run, pred


def test_predictors_command_saves_safetensors_and_json(setup, capsys):
    _, _, _, pred = setup
    meta = json.loads((pred / "predictors.json").read_text())
    assert meta["dataset"] == "blobs" and meta["variables"] == ["a", "b"] and meta["edges"] == [["a", "b"]]
    assert meta["image_shape"] == [1, 8, 8] and set(meta["metrics"]["mae"]) == {"a", "b"}
    assert (pred / "predictors.safetensors").stat().st_size > 0


def test_predictors_print_what_predicting_the_mean_scores_and_note_a_coarse_one(setup, capsys, tmp_path):
    _, data, _, _ = setup
    argv = ["predictors", "--data", str(data), "--epochs", "1", "--width", "4", "--no-progress"]
    assert main(argv + ["--out", str(tmp_path / "p")]) == 0
    printed = capsys.readouterr()
    labels = np.array([[float(r["a"]), float(r["b"])] for r in csv.DictReader(open(data / "labels.csv"))])
    test = np.arange(len(labels)) % 3 == 0
    guess = np.abs(labels[test, 0] - labels[~test, 0].mean()).mean()
    assert "test MAE a: " in printed.out and f"(predicting the train mean: {guess:.4g})" in printed.out
    assert "not even twice as good as predicting the mean" in printed.err  # one epoch of a width-4 net learns little


def test_counterfactual_command_writes_grid_and_csv(setup, capsys):
    base, data, run, _ = setup
    out = base / "cf" / "grid.png"
    argv = ["counterfactual", "--run", str(run), "--data", str(data), "--n", "3", "--do", "a=1.5,3", "--do", "b=150",
            "--steps", "4", "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    assert Image.open(out).size[0] > 100
    rows = list(csv.DictReader(open(out.with_suffix(".csv"))))
    assert len(rows) == 3 * 4  # 3 images x (reconstruction + 3 interventions)
    assert [r["column"] for r in rows[:4]] == ["reconstruction", "a=1.5", "a=3", "b=150"]
    by_col = {r["column"]: r for r in rows[:4]}
    assert float(by_col["a=1.5"]["a_counterfactual"]) == pytest.approx(1.5, abs=1e-4)
    assert float(by_col["b=150"]["b_counterfactual"]) == pytest.approx(150, abs=1e-3)
    assert by_col["b=150"]["a_counterfactual"] == by_col["b=150"]["a_factual"]  # a is not a descendant of b
    assert "note:" not in capsys.readouterr().err  # values like the training data's
    far = base / "cf-far" / "grid.png"
    assert main(["counterfactual", "--run", str(run), "--data", str(data), "--n", "1", "--do", "a=1e6", "--steps", "2", "--out", str(far), "--no-progress"]) == 0
    assert "note: a=1e+06 lies" in capsys.readouterr().err and far.is_file()  # extrapolation is allowed, with a note
    more = base / "cf-more" / "grid.png"
    assert main(["counterfactual", "--run", str(run), "--data", str(data), "--n", "99", "--do", "a=2", "--steps", "2", "--out", str(more), "--no-progress"]) == 0
    assert "note: --n 99, but the test split has 16 images: the grid has 16 rows" in capsys.readouterr().err


def test_joint_interventions_are_one_column_each(setup):
    base, data, run, _ = setup
    out = base / "cf-joint" / "grid.png"
    argv = ["counterfactual", "--run", str(run), "--data", str(data), "--n", "2", "--do", "a=3", "--joint", "a=1.5,b=150",
            "--steps", "3", "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    rows = list(csv.DictReader(open(out.with_suffix(".csv"))))
    assert [r["column"] for r in rows[:3]] == ["reconstruction", "a=3", "a=1.5, b=150"]
    joint = rows[2]
    assert joint["intervention"] == "do(a=1.5, b=150)"
    # both set at once: the descendant b takes its own value, not the one a's mechanism would give it
    assert float(joint["a_counterfactual"]) == pytest.approx(1.5, abs=1e-4)
    assert float(joint["b_counterfactual"]) == pytest.approx(150, abs=1e-3)


def test_counterfactual_steps_default_to_the_runs_sample_steps(setup, capsys):
    base, data, run, _ = setup
    out = base / "cf-default" / "grid.png"
    assert main(["counterfactual", "--run", str(run), "--data", str(data), "--n", "1", "--do", "a=2", "--out", str(out), "--no-progress"]) == 0
    assert "10 DDIM steps, uniform spacing" in capsys.readouterr().out  # the tiny config's diffusion.sample_steps / spacing
    assert main(["counterfactual", "--run", str(run), "--data", str(data), "--n", "1", "--do", "a=2", "--out", str(out), "--no-progress",
                 "--spacing", "quadratic", "--force"]) == 0
    assert "10 DDIM steps, quadratic spacing" in capsys.readouterr().out


def test_counterfactual_refuses_an_out_that_is_a_folder_before_sampling(setup, capsys, monkeypatch, tmp_path):
    _, data, run, _ = setup
    (tmp_path / "d.png").mkdir()
    monkeypatch.setattr(cf, "ddim_invert", lambda *a, **k: pytest.fail("sampling started"))
    assert main(["counterfactual", "--run", str(run), "--data", str(data), "--do", "a=2", "--out", str(tmp_path / "d.png"), "--no-progress"]) == 2
    errors = error_lines(capsys)
    assert len(errors) == 1 and f"{tmp_path / 'd.png'} is a folder" in errors[0], errors


def test_counterfactual_on_other_data_names_the_missing_variable_first(setup, capsys, tmp_path):
    _, _, run, _ = setup
    other = tmp_path / "other"
    (other / "images").mkdir(parents=True)
    for k in range(3):
        Image.fromarray(np.full((16, 16), 40 * k, np.uint8)).save(other / "images" / f"{k}.png")
    (other / "labels.csv").write_text("file,p,q,split\n" + "".join(f"images/{k}.png,{k},{k},{'test' if k else 'train'}\n" for k in range(3)))
    (other / "graph.yaml").write_text("variables: [p, q]\nedges: [p -> q]\n")
    assert main(["counterfactual", "--run", str(run), "--data", str(other), "--do", "a=2", "--out", str(tmp_path / "g.png"), "--no-progress"]) == 2
    errors = error_lines(capsys)
    assert len(errors) == 1 and "the data has no variable 'a' of the run's graph" in errors[0], errors


def test_counterfactual_notes_a_data_graph_other_than_the_runs(setup, capsys, tmp_path):
    _, data, run, _ = setup
    argv = ["counterfactual", "--run", str(run), "--n", "1", "--do", "a=2", "--steps", "2", "--no-progress"]
    assert main(argv + ["--data", str(data), "--out", str(tmp_path / "same.png")]) == 0
    assert "differs" not in capsys.readouterr().err
    reversed_graph = tmp_path / "reversed"
    shutil.copytree(data, reversed_graph)
    (reversed_graph / "graph.yaml").write_text("variables: [a, b]\nedges: [b -> a]\n")
    assert main(argv + ["--data", str(reversed_graph), "--out", str(tmp_path / "other.png")]) == 0
    err = capsys.readouterr().err
    assert f"note: the run's graph (a -> b) differs from {reversed_graph}'s (b -> a); the counterfactuals follow the run's" in err


@pytest.mark.parametrize("existing", ["grid.png", "grid.csv"])
def test_counterfactual_refuses_to_overwrite_its_outputs_without_force(setup, capsys, monkeypatch, tmp_path, existing):
    _, data, run, _ = setup
    out = tmp_path / "grid.png"
    (tmp_path / existing).write_text("earlier work")
    monkeypatch.setattr(cf, "ddim_invert", lambda *a, **k: pytest.fail("sampling started"))
    argv = ["counterfactual", "--run", str(run), "--data", str(data), "--n", "1", "--do", "a=2", "--steps", "2", "--out", str(out), "--no-progress"]
    assert main(argv) == 2
    errors = error_lines(capsys)
    assert len(errors) == 1 and f"{tmp_path / existing} already exists; pass --force" in errors[0], errors
    assert (tmp_path / existing).read_text() == "earlier work"
    monkeypatch.undo()
    assert main(argv + ["--force"]) == 0
    assert Image.open(out).size[0] > 0 and "a=2" in out.with_suffix(".csv").read_text()


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--do", "thickness=2"], "not a variable of the graph"),
        (["--do", "a=1,big"], "value 'big' is not a number"),
        (["--do", "a"], "expected NAME=VALUE"),
        (["--do", "a=2", "--w", "2"], "from the null condition needs a model trained with one"),
        (["--do", "digit=3"], "needs a class-conditional model"),
        (["--do", "a=2", "--step", "1"], "no checkpoint at step 1 (kept: 2)"),
        (["--do", "a=2", "--steps", "0"], "steps must be an integer in 2..100, got 0"),
        (["--do", "a=2", "--steps", "1"], "steps must be an integer in 2..100, got 1"),
        ([], "give at least one --do NAME=V1,V2,... or --joint NAME=V,NAME=V,..."),
        (["--joint", "a=1,b"], "--joint 'a=1,b': expected NAME=VALUE,NAME=VALUE"),
        (["--joint", "a=1,a=2"], "--joint 'a=1,a=2': names 'a' twice"),
        (["--joint", "a=1,b=x"], "--joint 'a=1,b=x': value 'x' is not a number"),
        (["--joint", "a=1,b=inf"], "values must be finite"),
        (["--joint", "a=1,q=2"], "not a variable of the graph"),
    ],
)
def test_counterfactual_command_bad_input_is_one_line_before_sampling(setup, capsys, monkeypatch, extra, message):
    base, data, run, _ = setup
    monkeypatch.setattr(cf, "ddim_invert", lambda *a, **k: pytest.fail("sampling started"))
    out = base / "bad" / "grid.png"
    assert main(["counterfactual", "--run", str(run), "--data", str(data), "--out", str(out), "--no-progress", *extra]) == 2
    errors = error_lines(capsys)
    assert len(errors) == 1 and message in errors[0], errors
    assert not out.exists()


def test_run_folder_without_checkpoint_is_refused(setup, capsys, tmp_path):
    _, data, run, pred = setup
    empty = tmp_path / "run"
    empty.mkdir()
    shutil.copy(run / "config.yaml", empty / "config.yaml")
    for cmd in (["counterfactual", "--do", "a=2", "--out", str(tmp_path / "g.png")],
                ["evaluate", "--predictors", str(pred), "--out", str(tmp_path / "rep"), "--quick"]):
        assert main([cmd[0], "--run", str(empty), "--data", str(data), *cmd[1:], "--no-progress"]) == 2
        errors = error_lines(capsys)
        assert len(errors) == 1 and "no model.safetensors" in errors[0], errors


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
    monkeypatch.setattr(cf, "ddim_invert", lambda *a, **k: pytest.fail("sampling started"))
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
    metrics["guidance_sweep"] = {"1.0": metrics["effectiveness"], "2.0": metrics["effectiveness"]}
    assert "Guidance away from the null condition." in render(metrics)  # the section a null-condition model gets
    assert main(argv) == 2 and "already exists" in capsys.readouterr().err


def test_evaluate_plots_guidance_for_the_scored_variables_of_a_folder_without_scm(setup, tmp_path):
    base, data, run, pred = setup
    config = read_config(run).with_overrides(["model.cond_drop_prob=0.3"])
    guided_run = train(config, data, tmp_path / "run", progress=False)
    out = tmp_path / "report"
    argv = ["evaluate", "--run", str(guided_run), "--predictors", str(pred), "--data", str(data), "--out", str(out),
            "--quick", "--n", "6", "--n-small", "4", "--steps", "3", "--sweep-steps", "3", "--sweep-w", "1,2", "--dci", "lasso", "--no-progress"]
    assert main(argv) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["guidance_sweep"]) == {"1.0", "2.0"}
    assert set(metrics["guidance_sweep"]["2.0"]["a"]["variables"]) == {"a"}  # the effect b has no SCM to score it
    assert (out / metrics["figures"]["guidance_sweep"]).is_file()


def test_evaluate_on_morphomnist_scores_the_bar_beside_the_true_counterfactual(tmp_path):
    from causaldiffae.data.morphomnist import generate
    from causaldiffae.demo import WEIGHTS

    data = generate(tmp_path / "mm", workers=1, seed=0, limit=12, progress=False)
    out = tmp_path / "report"
    argv = ["evaluate", "--run", str(WEIGHTS), "--predictors", str(WEIGHTS / "predictors"), "--data", str(data), "--out", str(out),
            "--quick", "--n", "6", "--n-small", "4", "--steps", "3", "--sweep-steps", "3", "--sweep-w", "1", "--dci", "lasso",
            "--seeds", "2", "--no-progress"]
    assert main(argv) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    oracle, spread = metrics["oracle"], metrics["oracle_std"]
    # the true counterfactual is scored on both draws of values, like the model: same digits, other targets
    assert spread["unedited"]["thickness_mae"] == 0 and spread["do_thickness"]["thickness_mae"] > 0
    assert metrics["effectiveness_std"]["thickness"]["variables"]["thickness"]["mae"] > 0
    assert oracle["n"] == 6 and oracle["do_thickness"]["thickness_mae"] < 0.1 and oracle["do_intensity"]["intensity_mae"] <= 1.0
    # the model's counterfactuals are nearer the true images than the unedited digits are
    assert all(0 < d["model"] < d["null"] for d in oracle["image_l1"].values())
    report = (out / "report.md").read_text()
    assert "Distance to the true counterfactual image" in report
    assert "| criterion | measured | target | | true counterfactual | |" in report
    assert "do(intensity): thickness error (preserved)" in report
    assert "averaged over the same 2 draws of values" in report
    true_fd = metrics["realism"]["frechet_true_counterfactual"]
    assert set(true_fd) == {"thickness", "intensity"} and all(v > 0 for v in true_fd.values())
    assert "true counterfactuals, do(intensity) (the dataset's generator)" in report
    assert metrics["settings"]["spacing"] == "quadratic" and "(quadratic spacing)" in report  # the shipped config's


@pytest.mark.parametrize(
    "argv, message",
    [
        (["evaluate", "--device", "banana"], "--device 'banana': not a torch device"),
        (["evaluate", "--out", "FILE"], "FILE exists and is not a folder"),
        (["predictors", "--lr", "-1"], "--lr must be positive, got -1"),
        (["predictors", "--out", "FILE"], "FILE exists and is not a folder"),
        (["predictors", "--resolution", "0"], "resolution must be a positive number of pixels, got 0"),
        (["data", "check", "DATA", "--resolution", "-5"], "resolution must be a positive number of pixels, got -5"),
    ],
)
def test_bad_devices_rates_sizes_and_outputs_are_one_line(setup, tmp_path, capsys, argv, message):
    _, data, run, pred = setup
    file = tmp_path / "FILE"
    file.write_text("keep me")
    defaults = {
        "evaluate": ["--run", str(run), "--predictors", str(pred), "--data", str(data), "--out", str(tmp_path / "rep"), "--quick"],
        "predictors": ["--data", str(data), "--out", str(tmp_path / "pred")],
        "data": [],
    }[argv[0]]
    argv = [str(file) if a == "FILE" else str(data) if a == "DATA" else a for a in argv]
    assert main([argv[0], *defaults, *argv[1:], "--no-progress"] if argv[0] != "data" else argv) == 2  # later options win
    errors = error_lines(capsys)
    assert len(errors) == 1 and message.replace("FILE", str(file)) in errors[0], errors
    assert file.read_text() == "keep me"


def test_evaluate_converts_values_with_the_runs_label_statistics_not_the_datas(setup, capsys, tmp_path, monkeypatch):
    import causaldiffae.evaluation.pipeline as pipeline

    _, data, run, pred = setup
    shifted = tmp_path / "blobs"
    shutil.copytree(data, shifted)
    rows = list(csv.DictReader(open(data / "labels.csv")))
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


def test_evaluate_names_a_run_trained_with_the_variables_in_another_order(setup, capsys, tmp_path):
    _, data, run, _ = setup
    reordered = tmp_path / "blobs"
    shutil.copytree(data, reordered)
    (reordered / "graph.yaml").write_text("variables: [b, a]\nedges: [a -> b]\n")
    pred = tmp_path / "pred"
    assert main(["predictors", "--data", str(reordered), "--out", str(pred), "--epochs", "1", "--width", "4", "--no-progress"]) == 0
    argv = ["evaluate", "--run", str(run), "--predictors", str(pred), "--data", str(reordered), "--out", str(tmp_path / "r"), "--quick", "--no-progress"]
    assert main(argv) == 2
    errors = error_lines(capsys)
    assert len(errors) == 1 and "the run orders its variables a, b, the data b, a" in errors[0], errors


@pytest.mark.parametrize("command", ["train", "predictors", "evaluate", "counterfactual"])
def test_an_output_inside_the_dataset_folder_is_refused_before_any_work(setup, capsys, command):
    """A user folder's loader reads every image under it: a run's sample grids there would break the data."""
    _, data, run, pred = setup
    inside = data / "results" / ("grid.png" if command == "counterfactual" else "out")
    argv = {
        "train": ["train", "--preset", "morphomnist-cpu", "--data", str(data), "--out", str(inside)],
        "predictors": ["predictors", "--data", str(data), "--out", str(inside)],
        "evaluate": ["evaluate", "--run", str(run), "--predictors", str(pred), "--data", str(data), "--out", str(inside)],
        "counterfactual": ["counterfactual", "--run", str(run), "--data", str(data), "--do", "a=2", "--out", str(inside)],
    }[command]
    assert main([*argv, "--no-progress"]) == 2
    errors = error_lines(capsys)
    assert len(errors) == 1 and f"--out {inside} lies inside the dataset folder {data}" in errors[0], errors
    assert not (data / "results").exists()
    assert main(["data", "check", str(data)]) == 0  # the data is untouched

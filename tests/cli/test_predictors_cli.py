"""The predictors command on the tiny blob folder."""

import json

import numpy as np
from cli_fixtures import read_rows, write_morpho_split

from causaldiffae.cli import main


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
    labels = np.array([[float(r["a"]), float(r["b"])] for r in read_rows(data / "labels.csv")])
    test = np.arange(len(labels)) % 3 == 0
    guess = np.abs(labels[test, 0] - labels[~test, 0].mean()).mean()
    assert "test MAE a: " in printed.out and f"(predicting the train mean: {guess:.4g})" in printed.out
    assert "not even twice as good as predicting the mean" in printed.err  # one epoch of a width-4 net learns little


def test_predictors_on_a_small_train_split_take_more_passes_by_default_and_say_so(setup, capsys, tmp_path):
    """32 images make 12 steps in six passes, which read both variables no better than the train mean."""
    _, data, _, _ = setup
    argv = ["predictors", "--data", str(data), "--out", str(tmp_path / "p"), "--width", "4", "--batch-size", "16", "--no-progress"]
    assert main(argv) == 0
    n_train = json.loads((tmp_path / "p" / "predictors.json").read_text())["training"]["n_train"]
    steps = -(-n_train // 16)
    epochs = -(-400 // steps)
    printed = capsys.readouterr()
    assert f"{epochs} epochs, so that {n_train} train images make at least 400 steps (--epochs to change)" in printed.out
    assert "not even twice as good as predicting the mean" not in printed.err
    assert json.loads((tmp_path / "p" / "predictors.json").read_text())["training"]["epochs"] == epochs


def test_predictors_of_a_dataset_with_classes_print_the_class_accuracy_beside_the_most_common_class(tmp_path, capsys):
    rng = np.random.default_rng(0)
    folder = tmp_path / "morpho"
    folder.mkdir()
    classes = {"train": rng.integers(0, 10, 24), "t10k": np.array([3, 3, 3, 1, 7, 3, 0, 3])}  # the most common: 3, 5 of 8
    for prefix, digits in classes.items():
        write_morpho_split(folder, prefix, digits, rng)
    argv = ["predictors", "--data", str(folder), "--out", str(tmp_path / "p"), "--epochs", "1", "--width", "4", "--no-progress"]
    assert main(argv) == 0
    accuracy = json.loads((tmp_path / "p" / "predictors.json").read_text())["metrics"]["accuracy"]
    assert f"test class accuracy: {100 * accuracy:.2f}% (the most common class: 62.50%)" in capsys.readouterr().out

"""The predictors command on the tiny blob folder."""

import csv
import json

import numpy as np

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
    labels = np.array([[float(r["a"]), float(r["b"])] for r in csv.DictReader(open(data / "labels.csv"))])
    test = np.arange(len(labels)) % 3 == 0
    guess = np.abs(labels[test, 0] - labels[~test, 0].mean()).mean()
    assert "test MAE a: " in printed.out and f"(predicting the train mean: {guess:.4g})" in printed.out
    assert "not even twice as good as predicting the mean" in printed.err  # one epoch of a width-4 net learns little

"""The counterfactual command end to end on a tiny run and a user folder."""

import csv
import re
import shutil

import numpy as np
import pytest
from cli_fixtures import error_lines, image_size, read_rows
from PIL import Image

from causaldiffae.cli import main
from causaldiffae.models import CausalDiffAE


def test_counterfactual_command_writes_grid_and_csv(setup, capsys):
    base, data, run, _ = setup
    out = base / "cf" / "grid.png"
    argv = ["counterfactual", "--run", str(run), "--data", str(data), "--n", "3", "--do", "a=1.5,3", "--do", "b=150",
            "--steps", "4", "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    assert image_size(out)[0] > 100
    rows = read_rows(out.with_suffix(".csv"))
    assert len(rows) == 3 * 4  # 3 images x (reconstruction + 3 interventions)
    assert [r["column"] for r in rows[:4]] == ["reconstruction", "a=1.5", "a=3", "b=150"]
    by_col = {r["column"]: r for r in rows[:4]}
    assert float(by_col["a=1.5"]["a_counterfactual"]) == pytest.approx(1.5, abs=1e-4)
    assert float(by_col["b=150"]["b_counterfactual"]) == pytest.approx(150, abs=1e-3)
    assert by_col["b=150"]["a_counterfactual"] == by_col["b=150"]["a_factual"]  # a is not a descendant of b
    assert by_col["a=3"]["a_counterfactual"] == "3" and "class" not in by_col["a=3"]  # the set value exactly; no classes here
    assert [r["index"] for r in rows[::4]] == ["0", "8", "15"]  # spread over the 16 test images, not the first three
    assert "note:" not in capsys.readouterr().err  # values like the training data's
    far = base / "cf-far" / "grid.png"
    assert main(["counterfactual", "--run", str(run), "--data", str(data), "--n", "1", "--do", "a=1e6", "--steps", "2", "--out", str(far), "--no-progress"]) == 0
    assert "note: a=1e+06 lies" in capsys.readouterr().err and far.is_file()  # extrapolation is allowed, with a note
    more = base / "cf-more" / "grid.png"
    assert main(["counterfactual", "--run", str(run), "--data", str(data), "--n", "99", "--do", "a=2", "--steps", "2", "--out", str(more), "--no-progress"]) == 0
    assert "note: --n 99, but the test split has 16 images: the grid has 16 rows" in capsys.readouterr().err


def test_a_split_smaller_than_the_default_is_used_whole_without_a_note(capsys):
    from causaldiffae.cli.counterfactual import DEFAULT_N, pick_images

    assert pick_images(None, None, "test", 8).tolist() == list(range(8))  # the default 16 asks for nothing the user chose
    assert pick_images(None, None, "test", 100).tolist() == np.linspace(0, 99, DEFAULT_N).round().astype(int).tolist()
    assert capsys.readouterr().err == ""
    assert pick_images(None, 9, "test", 8).tolist() == list(range(8))
    assert "note: --n 9, but the test split has 8 images" in capsys.readouterr().err


def test_indices_pick_the_images(setup, capsys):
    base, data, run, _ = setup
    out = base / "cf-indices" / "grid.png"
    argv = ["counterfactual", "--run", str(run), "--data", str(data), "--indices", "5,2", "--do", "a=2", "--steps", "2", "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    rows = read_rows(out.with_suffix(".csv"))
    assert [r["index"] for r in rows] == ["5", "5", "2", "2"]
    assert main([*argv, "--n", "3", "--force"]) == 0
    assert "note: --indices picks 2 images; --n 3 is not used" in capsys.readouterr().err
    test_a = {str(i): float(row["a"]) for i, row in enumerate(r for r in read_rows(data / "labels.csv") if r["split"] == "test")}
    assert float(rows[0]["a_label"]) == pytest.approx(test_a["5"], rel=1e-5)


def test_joint_interventions_are_one_column_each(setup):
    base, data, run, _ = setup
    out = base / "cf-joint" / "grid.png"
    argv = ["counterfactual", "--run", str(run), "--data", str(data), "--n", "2", "--do", "a=3", "--joint", "a=1.5,b=150",
            "--steps", "3", "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    rows = read_rows(out.with_suffix(".csv"))
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


def test_in_a_log_counterfactual_says_what_it_samples_before_the_silence(setup, capsys):
    """Off a terminal the sampler's bars are not drawn, so a line says what the minutes go on (and
    a heartbeat follows each silent minute); --no-progress says nothing."""
    base, data, run, _ = setup
    out = base / "cf-log" / "grid.png"
    assert main(["counterfactual", "--run", str(run), "--data", str(data), "--n", "2", "--do", "a=2,3", "--out", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "abducting 2 images and decoding 2 interventions of each (the reconstruction: the image itself), 10 DDIM steps each"
    assert lines[-1].startswith("wrote ")
    assert main(["counterfactual", "--run", str(run), "--data", str(data), "--n", "1", "--do", "a=2", "--abduction", "inversion",
                 "--out", str(out), "--force"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "abducting 1 image and decoding the reconstruction and 1 intervention of each, 10 DDIM steps each"
    assert main(["counterfactual", "--run", str(run), "--data", str(data), "--n", "2", "--do", "a=2,3", "--out", str(out), "--force",
                 "--no-progress"]) == 0
    assert capsys.readouterr().out.splitlines()[0].startswith("wrote ")


def test_counterfactual_refuses_an_out_that_is_a_folder_before_sampling(setup, capsys, monkeypatch, tmp_path):
    _, data, run, _ = setup
    (tmp_path / "d.png").mkdir()
    monkeypatch.setattr(CausalDiffAE, "eps", lambda *a, **k: pytest.fail("sampling started"))  # every counterfactual calls it, in abduction or decoding
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
    monkeypatch.setattr(CausalDiffAE, "eps", lambda *a, **k: pytest.fail("sampling started"))  # every counterfactual calls it, in abduction or decoding
    argv = ["counterfactual", "--run", str(run), "--data", str(data), "--n", "1", "--do", "a=2", "--steps", "2", "--out", str(out), "--no-progress"]
    assert main(argv) == 2
    errors = error_lines(capsys)
    assert len(errors) == 1 and f"{tmp_path / existing} already exists; pass --force" in errors[0], errors
    assert (tmp_path / existing).read_text() == "earlier work"
    monkeypatch.undo()
    assert main(argv + ["--force"]) == 0
    assert image_size(out)[0] > 0 and "a=2" in out.with_suffix(".csv").read_text()


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
        (["--do", "a=2", "--indices", "1,x"], "--indices '1,x': expected whole numbers separated by commas"),
        (["--do", "a=2", "--indices", "3,16"], "--indices: 16 is not an image of the test split (0..15)"),
        (["--do", "a=2", "--indices", "-1"], "--indices: -1 is not an image of the test split (0..15)"),
        (["--do", "a=2", "--n", "0"], "--n must be at least 1, got 0"),
        (["--do", "a=2", "--out", "grid.jpg"], "expected a .png path"),
        (["--do", "a=2", "--seed", "100000000000000000000"], "--seed must lie in 0..2**63-1, got 100000000000000000000"),
        (["--do", "a=2", "--out", "FILE/grid.png"], "FILE is a file, so nothing can be written under it"),  # found before sampling, not after
        (["--do", "a=2", "--out", "LINK/grid.png"], "LINK is a symbolic link to FILE-gone, which does not exist"),
    ],
)
def test_counterfactual_command_bad_input_is_one_line_before_sampling(setup, capsys, monkeypatch, extra, message):
    base, data, run, _ = setup
    monkeypatch.setattr(CausalDiffAE, "eps", lambda *a, **k: pytest.fail("sampling started"))  # every counterfactual calls it, in abduction or decoding
    out = base / "bad" / "grid.png"
    file = base / "a-file"
    file.write_text("keep")
    link = base / "a-link"
    if not link.is_symlink():
        link.symlink_to(base / "a-file-gone")
    extra = [a.replace("FILE", str(file)).replace("LINK", str(link)) for a in extra]
    assert main(["counterfactual", "--run", str(run), "--data", str(data), "--out", str(out), "--no-progress", *extra]) == 2
    errors = error_lines(capsys)
    assert len(errors) == 1 and message.replace("FILE", str(file)).replace("LINK", str(link)) in errors[0], errors
    assert not out.exists() and file.read_text() == "keep"


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


def test_a_run_stopped_before_its_train_steps_is_noted_unless_a_step_is_picked(setup, capsys, tmp_path):
    _, data, run, pred = setup
    stopped = tmp_path / "run"
    shutil.copytree(run, stopped)
    config = stopped / "config.yaml"
    config.write_text(re.sub(r"(?m)^  steps: 2$", "  steps: 7000", config.read_text()))  # as if Ctrl-C ended it at step 2
    note = f"note: {stopped} has trained 2 of its train.steps=7000 steps, so its images are a part-trained model's"
    cf = ["counterfactual", "--run", str(stopped), "--data", str(data), "--n", "1", "--do", "a=2", "--steps", "2", "--no-progress"]
    assert main([*cf, "--out", str(tmp_path / "g.png")]) == 0
    assert note in capsys.readouterr().err
    assert main([*cf, "--step", "2", "--out", str(tmp_path / "picked.png")]) == 0
    assert "note:" not in capsys.readouterr().err  # a kept checkpoint picked on purpose
    evaluate = ["evaluate", "--run", str(stopped), "--predictors", str(pred), "--data", str(data), "--out", str(tmp_path / "rep"),
                "--quick", "--sweep-w", "1,nan", "--no-progress"]  # refused after loading, before sampling
    assert main(evaluate) == 2 and note in capsys.readouterr().err
    assert main(["counterfactual", "--run", str(run), "--data", str(data), "--n", "1", "--do", "a=2", "--steps", "2",
                 "--out", str(tmp_path / "finished.png"), "--no-progress"]) == 0
    assert "note:" not in capsys.readouterr().err


def test_the_csv_holds_the_set_value_itself_not_the_latents_reading(setup, tmp_path):
    """Zero is where a latent's reading (about -4e-9) and the value set differ visibly in the CSV."""
    _, data, run, _ = setup
    out = tmp_path / "zero.png"
    assert main(["counterfactual", "--run", str(run), "--data", str(data), "--n", "1", "--do", "a=0", "--steps", "2", "--out", str(out), "--no-progress"]) == 0
    rows = read_rows(out.with_suffix(".csv"))
    assert rows[1]["column"] == "a=0" and rows[1]["a_counterfactual"] == "0"


def test_images_of_another_channel_count_than_the_runs_are_refused_before_sampling(setup, capsys, monkeypatch, tmp_path):
    _, data, run, _ = setup
    rgb = tmp_path / "rgb"
    shutil.copytree(data, rgb)
    for png in (rgb / "images").glob("*.png"):
        Image.open(png).convert("RGB").save(png)
    monkeypatch.setattr(CausalDiffAE, "eps", lambda *a, **k: pytest.fail("sampling started"))
    out = tmp_path / "g.png"
    assert main(["counterfactual", "--run", str(run), "--data", str(rgb), "--do", "a=2", "--out", str(out), "--no-progress"]) == 2
    errors = error_lines(capsys)
    assert len(errors) == 1 and "images are (3, 8, 8), the run was trained on (1, 8, 8)" in errors[0], errors
    assert not out.exists()


def test_the_grid_and_its_csv_are_written_as_a_pair(setup, monkeypatch, tmp_path):
    """A Ctrl-C while the pair is written waits for both; a failure on the CSV leaves neither."""
    import os
    import signal

    import causaldiffae.evaluation.figures as figures

    base, data, run, _ = setup
    argv = ["counterfactual", "--run", str(run), "--data", str(data), "--n", "1", "--do", "a=2", "--steps", "2", "--no-progress"]
    draw = figures.image_grid

    def interrupted_while_drawing(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)
        return draw(*args, **kwargs)

    monkeypatch.setattr(figures, "image_grid", interrupted_while_drawing)
    assert main(argv + ["--out", str(tmp_path / "a" / "grid.png")]) == 130
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["grid.csv", "grid.png"]
    monkeypatch.setattr(figures, "image_grid", draw)
    monkeypatch.setattr(csv, "writer", lambda fh: (_ for _ in ()).throw(OSError(28, "No space left on device")))
    assert main(argv + ["--out", str(tmp_path / "b" / "grid.png")]) == 2
    assert list((tmp_path / "b").iterdir()) == []


def _test_files(data) -> list:
    """The blobs' test images in split order (the --indices of --data)."""
    return [data / r["file"] for r in read_rows(data / "labels.csv") if r["split"] == "test"]


def test_image_files_give_the_counterfactuals_of_the_same_dataset_images(setup, tmp_path, capsys):
    """--images reads a file as the dataset reads it: same pixels, same seed, the same counterfactuals;
    only the labels, which a file does not carry, are left empty."""
    _, data, run, _ = setup
    files = _test_files(data)
    common = ["counterfactual", "--run", str(run), "--do", "a=1.5,3", "--joint", "a=2,b=150", "--steps", "3", "--no-progress"]
    assert main([*common, "--data", str(data), "--indices", "5,2", "--out", str(tmp_path / "data.png")]) == 0
    assert main([*common, "--images", str(files[5]), str(files[2]), "--out", str(tmp_path / "files.png")]) == 0
    assert "note:" not in capsys.readouterr().err  # the files are already the run's shape
    by_index = read_rows(tmp_path / "data.csv")
    by_file = read_rows(tmp_path / "files.csv")
    assert len(by_file) == len(by_index) == 2 * 4
    assert [r["file"] for r in by_file[::4]] == [str(files[5]), str(files[2])]
    for a, b in zip(by_index, by_file):
        assert a["a_label"] != "" and b["a_label"] == b["b_label"] == ""
        for key in ("column", "intervention", "a_factual", "b_factual", "a_counterfactual", "b_counterfactual"):
            assert a[key] == b[key], key
    mine = tmp_path / "mine"  # a pattern, as Windows' cmd or quotes pass it on: the files it matches, in name order
    mine.mkdir()
    shutil.copy(files[5], mine / "a.png")
    shutil.copy(files[2], mine / "b.png")
    assert main([*common, "--images", str(mine / "*.png"), "--out", str(tmp_path / "pattern.png")]) == 0
    by_pattern = read_rows(tmp_path / "pattern.csv")
    assert [r["file"] for r in by_pattern[::4]] == [str(mine / "a.png"), str(mine / "b.png")]
    assert [r["b_counterfactual"] for r in by_pattern] == [r["b_counterfactual"] for r in by_file]
    assert image_size(tmp_path / "files.png") == image_size(tmp_path / "data.png")


def test_image_files_of_another_size_or_mode_are_converted_with_a_note(setup, tmp_path, capsys):
    _, data, run, _ = setup
    files = _test_files(data)
    big = tmp_path / "big.jpg"
    Image.open(files[0]).convert("RGB").resize((32, 24)).save(big)
    out = tmp_path / "g.png"
    assert main(["counterfactual", "--run", str(run), "--images", str(files[1]), str(big), "--do", "a=2", "--steps", "2",
                 "--out", str(out), "--no-progress"]) == 0
    assert f"note: 1 of 2 images converted to the run's 8x8, 1 channel(s) ({big} was 32x24 RGB)" in capsys.readouterr().err
    assert len(read_rows(out.with_suffix(".csv"))) == 4


def test_an_inverted_image_file_is_noted_and_invert_turns_it_back(setup, tmp_path, capsys):
    """The blobs are bright on black; a file bright at its edges is unlike every training image, and
    --invert gives exactly the counterfactuals of the file it was inverted from."""
    _, data, run, _ = setup
    original = _test_files(data)[3]
    inverted = tmp_path / "inverted.png"
    Image.fromarray(255 - np.asarray(Image.open(original))).save(inverted)
    common = ["counterfactual", "--run", str(run), "--do", "a=1.5,3", "--steps", "2", "--no-progress"]
    assert main([*common, "--images", str(original), "--out", str(tmp_path / "original.png")]) == 0
    assert "note:" not in capsys.readouterr().err
    assert main([*common, "--images", str(inverted), "--out", str(tmp_path / "inverted-grid.png")]) == 0
    notes = capsys.readouterr().err.splitlines()
    assert len(notes) == 1 and re.fullmatch(rf"note: {re.escape(str(inverted))}: its edge pixels average 1\.00 in brightness \(0 black, "
                                            r"1 white\), the run's training images' 0\.\d\d-0\.\d\d; it looks inverted: --invert turns it over", notes[0]), notes
    assert main([*common, "--images", str(inverted), "--invert", "--out", str(tmp_path / "back.png")]) == 0
    assert "note:" not in capsys.readouterr().err
    assert main([*common, "--images", str(original), "--invert", "--out", str(tmp_path / "twice.png")]) == 0
    assert capsys.readouterr().err.endswith("it looks inverted once --invert turned it over: leave --invert out\n")
    by_original = read_rows(tmp_path / "original.csv")
    by_inverted = read_rows(tmp_path / "back.csv")
    assert len(by_original) == 3
    assert [{k: v for k, v in r.items() if k != "file"} for r in by_original] == [{k: v for k, v in r.items() if k != "file"} for r in by_inverted]


def test_an_off_centre_image_file_is_noted(setup, tmp_path, capsys):
    """The blobs are centred; the smallest moved a pixel down and right stays inside the frame but its
    centroid lies 1.4 px from the centre, beyond every training blob's."""
    _, data, run, _ = setup
    rows = [r for r in read_rows(data / "labels.csv") if r["split"] == "test"]
    smallest = data / min(rows, key=lambda r: float(r["a"]))["file"]
    moved = tmp_path / "moved.png"
    Image.fromarray(np.roll(np.asarray(Image.open(smallest)), (1, 1), axis=(0, 1))).save(moved)
    common = ["counterfactual", "--run", str(run), "--do", "a=2", "--steps", "2", "--no-progress"]
    assert main([*common, "--images", str(smallest), str(moved), "--out", str(tmp_path / "g.png")]) == 0
    notes = capsys.readouterr().err.splitlines()
    assert len(notes) == 1 and re.fullmatch(rf"note: {re.escape(str(moved))}: its brightness centroid lies 1\.4 px from the centre, the run's "
                                            r"training images' within 0\.\d px; --frame centres it, or its counterfactuals may be poor", notes[0]), notes


def test_an_image_file_sized_unlike_the_training_images_is_noted_and_frame_redraws_it(setup, tmp_path, capsys):
    """Held to a run whose training blobs all spanned 4-5 of their 8 px, a test blob spanning 2 is noted and
    one spanning 4 is not (the span is read off the file at half its peak brightness); --frame redraws the
    small one at the median span, 4 px."""
    import json

    from safetensors.torch import load_file, save_file

    from causaldiffae.checkpoint import read_model_meta
    from causaldiffae.data.framing import extent

    _, data, run, _ = setup
    narrow = shutil.copytree(run, tmp_path / "run")
    weights = narrow / "model.safetensors"
    meta = {**read_model_meta(weights), "extent": [0.5, 0.5, 0.625]}
    save_file(load_file(str(weights)), str(weights), metadata={"causaldiffae": json.dumps(meta)})
    files = _test_files(data)
    spans = extent(np.stack([np.asarray(Image.open(f))[..., None] for f in files])) * 8
    small, fitting = files[int(np.argmin(spans))], files[list(spans).index(4)]
    assert min(spans) == 2
    argv = ["counterfactual", "--run", str(narrow), "--do", "a=2", "--steps", "2", "--no-progress", "--out", str(tmp_path / "g.png")]
    assert main([*argv, "--images", str(fitting), str(small)]) == 0
    notes = capsys.readouterr().err.splitlines()
    assert notes == [f"note: {small}: its bright part spans 2 of its 8 px (at half its peak brightness), the run's training images' "
                     "4-5 px; --frame scales it to match, or its counterfactuals may be poor"], notes
    assert main([*argv, "--images", str(small), "--frame", "--force"]) == 0
    notes = capsys.readouterr().err.splitlines()  # measured on the pixels the model is given: no size note; a blob enlarged 2x is soft
    assert len(notes) == 1 and re.fullmatch(rf"note: {re.escape(str(small))}: its edges rise over \d\.\d\d px .*, the run's training images' "
                                            r"0\.00-0\.00: softer than theirs, or its counterfactuals may be poor", notes[0]), notes


def test_an_image_file_softer_than_the_training_images_is_told_frame_sharpens_it(setup, tmp_path, capsys):
    """The run's blobs are drawn with no partly bright pixels; a blob blurred by a pixel rises over some, and its
    note names --frame, which sharpens such a file; once framed, the note says only what the file is."""
    from scipy import ndimage

    _, data, run, _ = setup
    blob = np.asarray(Image.open(_test_files(data)[3])).astype(np.float64)
    soft = tmp_path / "soft.png"
    Image.fromarray(ndimage.gaussian_filter(blob, 1).round().astype(np.uint8)).save(soft)
    argv = ["counterfactual", "--run", str(run), "--do", "a=2", "--steps", "2", "--no-progress", "--images", str(soft)]
    assert main([*argv, "--out", str(tmp_path / "g.png")]) == 0
    notes = capsys.readouterr().err.splitlines()
    assert len(notes) == 1 and notes[0].endswith("softer than theirs; --frame sharpens them to match, or its counterfactuals may be poor"), notes
    assert main([*argv, "--frame", "--out", str(tmp_path / "framed.png")]) == 0
    assert not any("--frame sharpens" in note for note in capsys.readouterr().err.splitlines())


def test_an_image_file_on_a_grey_page_is_noted_and_frame_levels_it(setup, tmp_path, capsys):
    """Held to a run whose training images' edges were 0.00-0.05 bright, a test blob on a page of 60 grey levels
    (a photograph, inverted) is noted; --frame levels its page to black before anything else, and the conversion
    note names what it was."""
    import json

    from safetensors.torch import load_file, save_file

    from causaldiffae.checkpoint import read_model_meta

    _, data, run, _ = setup
    dark = shutil.copytree(run, tmp_path / "run")
    weights = dark / "model.safetensors"
    save_file(load_file(str(weights)), str(weights), metadata={"causaldiffae": json.dumps({**read_model_meta(weights), "edge_brightness": [0.0, 0.05]})})
    rows = [r for r in read_rows(data / "labels.csv") if r["split"] == "test"]
    blob = np.asarray(Image.open(data / min(rows, key=lambda r: float(r["a"]))["file"])).astype(np.float64)
    grey = tmp_path / "grey.png"
    Image.fromarray((60 + blob * (255 - 60) / 255).round().astype(np.uint8)).save(grey)
    argv = ["counterfactual", "--run", str(dark), "--do", "a=2", "--steps", "2", "--no-progress", "--images", str(grey)]
    assert main([*argv, "--out", str(tmp_path / "g.png")]) == 0
    notes = capsys.readouterr().err.splitlines()
    assert len(notes) == 1 and re.fullmatch(rf"note: {re.escape(str(grey))}: its edge pixels average 0\.24 in brightness .*, the run's "
                                            r"training images' 0\.00-0\.05; on another "
                                            r"background or cropped closer: --frame levels its background to theirs and redraws it with a "
                                            r"margin, or its counterfactuals may be poor", notes[0]), notes
    assert main([*argv, "--frame", "--out", str(tmp_path / "framed.png")]) == 0
    notes = capsys.readouterr().err.splitlines()
    assert f"note: 1 of 1 images converted to the run's 8x8, 1 channel(s) ({grey} was 8x8 L, its background 0.24 bright, levelled to the run's)" in notes
    assert not any("edge pixels average" in note for note in notes), notes
    light = tmp_path / "light.png"  # a photographed page not yet inverted: light grey, past mid-grey from the run's pages
    Image.fromarray((230 - blob * 200 / 255).round().astype(np.uint8)).save(light)
    assert main([*argv[:-1], str(light), "--frame", "--out", str(tmp_path / "light-grid.png")]) == 0
    notes = capsys.readouterr().err.splitlines()
    assert any(note.endswith("0.00-0.05; it looks inverted: --invert turns it over") for note in notes), notes


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--images", "MISSING"], "MISSING: image file not found"),
        (["--images", "NOMATCH"], "--images NOMATCH: no file matches this pattern"),
        (["--images", "TEXT"], "TEXT: unreadable image"),
        (["--images", "FIRST", "--indices", "1"], "--indices picks images of --data; with --images every file given is a row"),
        (["--images", "FIRST", "--split", "train"], "--split picks images of --data"),
        (["--data", "DATA", "--classes", "3"], "--classes goes with --images"),
        (["--data", "DATA", "--predictors", "DATA"], "--predictors goes with --images"),
        (["--data", "DATA", "--invert"], "--invert goes with --images"),
        (["--data", "DATA", "--frame"], "--frame goes with --images"),
        (["--data", "DATA", "--even-ink"], "--even-ink goes with --images"),
        (["--images", "FIRST", "--even-ink"], "--even-ink evens the ink as part of --frame; give --frame too"),
        (["--images", "FIRST", "--classes", "3", "--predictors", "DATA"], "--classes and --predictors both say the images' classes"),
    ],
)
def test_image_file_bad_input_is_one_line_before_sampling(setup, capsys, monkeypatch, tmp_path, extra, message):
    _, data, run, _ = setup
    monkeypatch.setattr(CausalDiffAE, "eps", lambda *a, **k: pytest.fail("sampling started"))
    (tmp_path / "notes.png").write_text("not an image")
    swap = {"MISSING": str(tmp_path / "gone.png"), "TEXT": str(tmp_path / "notes.png"), "FIRST": str(_test_files(data)[0]), "DATA": str(data),
            "NOMATCH": str(tmp_path / "digit-*.png")}
    extra = [swap.get(a, a) for a in extra]
    out = tmp_path / "g.png"
    assert main(["counterfactual", "--run", str(run), "--do", "a=2", "--out", str(out), "--no-progress", *extra]) == 2
    errors = error_lines(capsys)
    expected = message.replace("MISSING", swap["MISSING"]).replace("TEXT", swap["TEXT"]).replace("NOMATCH", swap["NOMATCH"])
    assert len(errors) == 1 and expected in errors[0], errors
    assert not out.exists()


def test_data_and_images_are_one_or_the_other(setup, capsys, tmp_path):
    _, data, run, _ = setup
    with pytest.raises(SystemExit):
        main(["counterfactual", "--run", str(run), "--data", str(data), "--images", str(_test_files(data)[0]), "--do", "a=2",
              "--out", str(tmp_path / "g.png")])
    assert "not allowed with argument" in capsys.readouterr().err


def test_image_files_on_a_class_conditional_run_take_their_class_from_classes_or_predictors(setup, tmp_path, capsys, monkeypatch):
    from causaldiffae.demo import WEIGHTS

    files = []
    for k, column in enumerate((12, 13)):  # two upright strokes about the centre, 28x28 grey, as MNIST draws them (white on black,
        digit = np.zeros((28, 28), np.uint8)  # with a grey rim: edges rising as the training digits' do)
        digit[4:24, column - 1 : column + 4] = 100
        digit[5:23, column : column + 3] = 255
        files.append(tmp_path / f"stroke{k}.png")
        Image.fromarray(digit).save(files[-1])
    common = ["counterfactual", "--run", str(WEIGHTS), "--images", *map(str, files), "--do", "thickness=3", "--steps", "2", "--no-progress"]
    assert main([*common, "--classes", "1,7", "--out", str(tmp_path / "told.png")]) == 0
    assert "note:" not in capsys.readouterr().err
    assert [r["class"] for r in read_rows(tmp_path / "told.csv")] == ["1", "1", "7", "7"]
    assert main([*common, "--out", str(tmp_path / "unknown.png")]) == 0
    assert "the images' class is unknown to it (-1)" in capsys.readouterr().err
    assert {r["class"] for r in read_rows(tmp_path / "unknown.csv")} == {"-1"}
    from causaldiffae.data.morphomnist import embedded_source

    images, digits = embedded_source()["test"]
    real = []
    for k in (0, 1):
        real.append(tmp_path / f"digit{k}.png")
        Image.fromarray(images[k]).save(real[-1])
    by_classifier = ["counterfactual", "--run", str(WEIGHTS), "--images", *map(str, real), "--predictors", str(WEIGHTS / "predictors"),
                     "--do", "thickness=3", "--steps", "2", "--no-progress", "--out", str(tmp_path / "read.png")]
    assert main(by_classifier) == 0
    assert f"classes read by the classifier of {WEIGHTS / 'predictors'}: {digits[0]}, {digits[1]}" in capsys.readouterr().err
    assert [r["class"] for r in read_rows(tmp_path / "read.csv")] == [str(digits[0])] * 2 + [str(digits[1])] * 2
    monkeypatch.setattr(CausalDiffAE, "eps", lambda *a, **k: pytest.fail("sampling started"))
    blobs_predictors = setup[3]
    for extra, message in ((["--classes", "1,2,3"], "3 classes for 2 images"), (["--classes", "one"], "expected whole numbers"),
                           (["--classes", "10"], "10 is not a class of this model"),
                           (["--predictors", str(blobs_predictors)], "made for 0 classes of (1, 8, 8) images, the run has 10 classes of (1, 28, 28)")):
        assert main([*common, *extra, "--out", str(tmp_path / "bad.png")]) == 2
        errors = error_lines(capsys)
        assert len(errors) == 1 and message in errors[0], errors


def test_image_files_on_a_label_conditional_run_are_refused_before_sampling(setup, tmp_path, capsys):
    """Its condition is the labels themselves, which a file does not carry."""
    from cli_fixtures import TINY_MODEL

    from causaldiffae.config import ExperimentConfig
    from causaldiffae.training import train

    _, data, _, _ = setup
    config = ExperimentConfig.from_dict(
        {"name": "lc", "model": {**TINY_MODEL, "variant": "label-conditional"}, "diffusion": {"num_train_timesteps": 100, "sample_steps": 4},
         "train": {"steps": 1, "batch_size": 8, "log_every": 1, "sample_every": 1000, "checkpoint_every": 1, "grid_steps": 2}},
        "lc",
    )
    run = train(config, data, tmp_path / "lc", progress=False)
    out = tmp_path / "g.png"
    assert main(["counterfactual", "--run", str(run), "--images", str(_test_files(data)[0]), "--do", "a=2", "--out", str(out), "--no-progress"]) == 2
    errors = error_lines(capsys)
    assert len(errors) == 1 and "--images: a label-conditional run needs each image's labels" in errors[0], errors
    assert not out.exists()


def test_a_blank_image_file_is_noted(setup, tmp_path, capsys):
    _, _, run, _ = setup
    blank = tmp_path / "blank.png"
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(blank)
    argv = ["counterfactual", "--run", str(run), "--images", str(blank), "--do", "a=2", "--steps", "2", "--no-progress", "--out", str(tmp_path / "g.png")]
    assert main(argv) == 0
    notes = capsys.readouterr().err.splitlines()
    assert notes == [f"note: {blank}: it is blank (black once converted to the run's 1 channel(s)): there is nothing to edit"], notes


def test_frame_needs_a_run_that_kept_how_large_its_images_are(setup, tmp_path, capsys, monkeypatch):
    import json

    from safetensors.torch import load_file, save_file

    from causaldiffae.checkpoint import read_model_meta

    _, data, run, _ = setup
    old = shutil.copytree(run, tmp_path / "run")
    weights = old / "model.safetensors"
    meta = {k: v for k, v in read_model_meta(weights).items() if k != "extent"}
    save_file(load_file(str(weights)), str(weights), metadata={"causaldiffae": json.dumps(meta)})
    monkeypatch.setattr(CausalDiffAE, "eps", lambda *a, **k: pytest.fail("sampling started"))
    argv = ["counterfactual", "--run", str(old), "--images", str(_test_files(data)[0]), "--frame", "--do", "a=2", "--out", str(tmp_path / "g.png")]
    assert main(argv) == 2
    errors = error_lines(capsys)
    assert len(errors) == 1 and f"--frame: the weights of {old} do not say how large its training images are drawn" in errors[0], errors
    monkeypatch.undo()
    assert main([*(a for a in argv if a != "--frame"), "--steps", "2", "--no-progress"]) == 0  # without --frame the run serves as before


def test_even_ink_reaches_the_framing_and_needs_a_run_that_kept_its_page(setup, tmp_path, capsys, monkeypatch):
    """``--frame --even-ink`` asks ``frame_file`` to even each file; a run whose weights do not say what page its
    images are drawn on (``edge_brightness``) cannot tell ink from page, and says so before sampling."""
    import json

    from safetensors.torch import load_file, save_file

    import causaldiffae.data.folder as folder
    from causaldiffae.checkpoint import read_model_meta

    _, data, run, _ = setup
    asked = []
    framed = folder.frame_file
    monkeypatch.setattr(folder, "frame_file", lambda image, framing, resolution, even=False: asked.append(even) or framed(image, framing, resolution, even))
    argv = ["counterfactual", "--run", str(run), "--images", *map(str, _test_files(data)[:2]), "--frame", "--even-ink", "--do", "a=2",
            "--steps", "2", "--no-progress", "--out", str(tmp_path / "g.png")]
    assert main(argv) == 0 and asked == [True, True]
    old = shutil.copytree(run, tmp_path / "run")
    weights = old / "model.safetensors"
    meta = {k: v for k, v in read_model_meta(weights).items() if k != "edge_brightness"}
    save_file(load_file(str(weights)), str(weights), metadata={"causaldiffae": json.dumps(meta)})
    monkeypatch.setattr(CausalDiffAE, "eps", lambda *a, **k: pytest.fail("sampling started"))
    assert main(["counterfactual", "--run", str(old), *argv[3:-1], str(tmp_path / "old.png")]) == 2
    errors = error_lines(capsys)
    assert len(errors) == 1 and f"--even-ink: the weights of {old} do not say what page its training images are drawn on" in errors[0], errors

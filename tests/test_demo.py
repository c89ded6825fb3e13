"""The shipped MorphoMNIST model: loads, answers counterfactuals, and the demo runs end to end."""

import json
import shlex

import numpy as np
import pytest
import torch
from PIL import Image

from causaldiffae.checkpoint import load_run
from causaldiffae.cli.demo import OWN_DIGIT
from causaldiffae.counterfactual import counterfactual
from causaldiffae.data.morphometrics import measure_thickness
from causaldiffae.data.morphomnist import embedded_source, generate_split
from causaldiffae.demo import WEIGHTS, render_report
from causaldiffae.evaluation.predictors import load_predictors


@pytest.fixture(scope="module")
def shipped():
    model, config = load_run(WEIGHTS)
    images, digits = embedded_source()["test"]
    morphed, labels = generate_split(images[:2], "test", seed=0, progress=False)
    x = torch.from_numpy(morphed).float().div(127.5).sub(1).unsqueeze(1)
    return model, config, x, labels, torch.as_tensor(digits[:2])


def test_shipped_model_answers_a_counterfactual(shipped):
    model, config, x, labels, digits = shipped
    assert model.variant == "causaldiffae" and model.graph.edges == (("thickness", "intensity"),)
    cf = counterfactual(model, x, {"thickness": [1.5, 4.5]}, steps=10, class_labels=digits)
    assert cf.images.shape == x.shape and torch.isfinite(cf.images).all()
    np.testing.assert_allclose(cf.values[:, 0], [1.5, 4.5], atol=1e-4)  # the latent is set (a round trip)
    pixels = ((cf.images[:, 0].numpy() + 1) * 127.5).round().clip(0, 255).astype(np.uint8)
    drawn = [measure_thickness(p) for p in pixels]  # the images themselves, measured
    assert abs(drawn[0] - 1.5) < 0.5 and abs(drawn[1] - 4.5) < 0.5, drawn
    # intensity is a descendant: the mechanism moves it with thickness (same abducted noise)
    assert cf.values[1, 1] > cf.values[0, 1]
    recon = counterfactual(model, x, {}, steps=10, class_labels=digits).images
    assert (cf.images - recon).abs().mean() > 0.01, "an intervention must change the image"


def test_shipped_weights_note_a_digit_drawn_small_and_frame_redraws_it(shipped, tmp_path, capsys):
    """The framing kept in the shipped weights' metadata passes MNIST-framed digits and notes one
    shrunk to 0.6 of its size (the model edits it far more loosely); --frame draws it at 20 px again,
    with edges softer than the training digits' (it is enlarged from 17 px), which a note says."""
    from causaldiffae.cli import main

    _, _, x, _, _ = shipped
    digits = ((x[:, 0].numpy() + 1) * 127.5).round().astype(np.uint8)
    small = np.zeros_like(digits[0])
    small[6:23, 6:23] = np.asarray(Image.fromarray(digits[0]).resize((17, 17), Image.Resampling.BOX))
    files = [tmp_path / name for name in ("a.png", "b.png", "small.png")]
    for file, pixels in zip(files, [*digits, small]):
        Image.fromarray(pixels).save(file)
    argv = ["counterfactual", "--run", str(WEIGHTS), "--images", *map(str, files), "--do", "thickness=3", "--steps", "2",
            "--classes", "-1", "--out", str(tmp_path / "g.png"), "--no-progress"]
    assert main(argv) == 0
    notes = [line for line in capsys.readouterr().err.splitlines() if line.startswith("note:") and "class" not in line]
    assert len(notes) == 1 and notes[0].startswith(f"note: {files[2]}: its bright part spans 1") and "training images' 16-22 px" in notes[0], notes
    assert main([*argv, "--frame", "--force"]) == 0
    notes = [line for line in capsys.readouterr().err.splitlines() if line.startswith("note:") and "class" not in line]
    assert len(notes) == 1 and notes[0].startswith(f"note: {files[2]}: its edges rise over") and "softer than theirs" in notes[0], notes


def test_shipped_weights_note_sharp_edges_and_frame_smooths_them(shipped, tmp_path, capsys):
    """A digit drawn as a pen draws it, on a page of 8x its pixels and cut at half its peak, resized to 28 px
    has sharper edges than the training digits (a note says so); --frame smooths them as they are drawn."""
    from causaldiffae.cli import main

    _, _, x, _, _ = shipped
    digit = ((x[0, 0].numpy() + 1) * 127.5).round().astype(np.uint8)
    large = np.asarray(Image.fromarray(digit).resize((224, 224), Image.Resampling.BICUBIC))
    pen = tmp_path / "pen.png"
    Image.fromarray(np.where(large >= digit.max() / 2, 255, 0).astype(np.uint8)).save(pen)
    argv = ["counterfactual", "--run", str(WEIGHTS), "--images", str(pen), "--do", "thickness=3", "--steps", "2", "--classes", "-1",
            "--out", str(tmp_path / "g.png"), "--no-progress"]
    assert main(argv) == 0
    notes = [line for line in capsys.readouterr().err.splitlines() if line.startswith(f"note: {pen}")]
    assert len(notes) == 1 and "the run's training images' 1.16-1.96: sharper than theirs; --frame smooths them to match" in notes[0], notes
    assert main([*argv, "--frame", "--force"]) == 0
    assert not [line for line in capsys.readouterr().err.splitlines() if line.startswith(f"note: {pen}")]


def test_shipped_predictors_match_the_model(shipped):
    model, *_ = shipped
    predictors = load_predictors(WEIGHTS / "predictors")
    assert predictors.meta.variables == list(model.graph.variables)
    assert predictors.meta.num_classes == 10


def test_a_column_an_earlier_grid_decoded_is_reused_in_its_place(shipped, tmp_path, monkeypatch):
    """The guidance sweep's w = 1 column is the do(thickness) grid's column for the same value:
    decoded once, shown in both grids where their columns say."""
    import causaldiffae.counterfactual as cf
    import causaldiffae.evaluation.figures as figures
    from causaldiffae.demo import _grid

    model, _, x, _, digits = shipped
    abd = cf.abduct(model, x, steps=3, class_labels=digits, generator=torch.Generator().manual_seed(0))
    decode, draw = cf.decode_interventions, figures.image_grid
    calls, grids = [], []
    monkeypatch.setattr(cf, "decode_interventions", lambda m, a, dos, **kw: calls.append((kw["w"], len(dos))) or decode(m, a, dos, **kw))
    monkeypatch.setattr(figures, "image_grid", lambda rows, path, **kw: grids.append(rows) or draw(rows, path, **kw))
    decoded: dict = {}
    _grid(model, abd, x, x, [("t=1.5", {"thickness": 1.5}, None), ("t=4.5", {"thickness": 4.5}, None)], tmp_path / "a.png", "a", decoded)
    _grid(model, abd, x, x, [("w=1", {"thickness": 4.5}, 1.0), ("w=0", {"thickness": 4.5}, 0.0)], tmp_path / "b.png", "b", decoded)
    assert calls == [(1.0, 2), (0.0, 1)]  # the second grid decodes only its w = 0 column
    mean, std = cf.label_stats(model)
    [(alone, _, _)] = decode(model, abd, [cf.check_do(model, {"thickness": 4.5}, len(x))], label_mean=mean, label_std=std, w=1.0)
    for first, second, image in zip(*grids, alone):
        np.testing.assert_allclose(first[3], image.numpy(), atol=1e-4)  # original, reconstruction, t=1.5, t=4.5
        assert np.array_equal(second[2], first[3]) and not np.allclose(first[2], first[3], atol=1e-2)
        assert not np.allclose(second[3], second[2], atol=1e-2)  # w = 0 is its own column


def test_demo_cli_runs_small(tmp_path, capsys):
    from causaldiffae.cli import main

    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--n", "4", "--grid", "2", "--steps", "5", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    for name in ("do_thickness.png", "do_intensity.png", "do_both.png", "guidance.png", "bar_resamples.png", "report.md", "scores.json"):
        assert (out / name).is_file(), name
        assert name in printed
    report = (out / "report.md").read_text()
    assert "do(thickness)" in report and "![" in report
    assert "true counterfactual" in report and printed.count("the true counterfactual:") == 4  # the four measured criteria
    assert "Distance to the true counterfactual image" in report and "Distance to the true counterfactual image" in printed
    assert "Scored on 4 embedded test digits" in report
    # every criterion says how often it holds over resamples of the scored digits; the true counterfactual's measured four too
    assert printed.count("% of resamples pass") == 6 + 4 and "| resamples passing |" in report
    assert "![the bar over resamples](bar_resamples.png)" in report
    hint = printed.splitlines()[printed.splitlines().index(f"{OWN_DIGIT}:") + 1].strip()
    stroke = np.zeros((56, 56), np.uint8)
    stroke[10:46, 26:32] = 255
    Image.fromarray(stroke).save(tmp_path / "one.png")
    argv = [{"FILE": str(tmp_path / "one.png"), "DIGIT": "1", "grid.png": str(tmp_path / "grid.png")}.get(a, a) for a in shlex.split(hint)]
    assert argv[0] == "causaldiffae" and main([*argv[1:], "--steps", "4", "--no-progress"]) == 0  # the command it prints works as printed
    assert (tmp_path / "grid.png").is_file()
    scores = json.loads((out / "scores.json").read_text())
    assert len(scores["per_image"]["do_intensity"]["thickness_mae"]) == 4  # each digit's values, once: not again in the summary
    assert "_per_image" not in json.dumps(scores["effectiveness"])
    elsewhere = render_report(scores, {"do(thickness)": out / "do_thickness.png"}, out, 1.0, data="data/mm")
    assert "Scored on 4 test digits of data/mm" in elsewhere  # digits from --data are not called embedded


@pytest.mark.parametrize("steps", ["0", "1", "5000"])
def test_demo_refuses_impossible_steps_before_building_data(tmp_path, capsys, monkeypatch, steps):
    import causaldiffae.demo as demo
    from causaldiffae.cli import main

    monkeypatch.setattr(demo, "embedded_test_digits", lambda *a, **k: pytest.fail("built the test digits"))
    assert main(["demo", "--out", str(tmp_path / "demo"), "--steps", steps, "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"steps must be an integer in 2..1000, got {steps}" in err[0], err
    assert not (tmp_path / "demo").exists()


def test_demo_refuses_an_out_that_is_a_file(tmp_path, capsys, monkeypatch):
    import causaldiffae.demo as demo
    from causaldiffae.cli import main

    monkeypatch.setattr(demo, "embedded_test_digits", lambda *a, **k: pytest.fail("built the test digits"))
    (tmp_path / "notes.txt").write_text("keep me")
    assert main(["demo", "--out", str(tmp_path / "notes.txt"), "--no-progress"]) == 2
    assert "notes.txt exists and is not a folder" in capsys.readouterr().err
    assert (tmp_path / "notes.txt").read_text() == "keep me"


def test_demo_refuses_a_folder_of_other_work_but_reruns_into_its_own(tmp_path, capsys, monkeypatch):
    import causaldiffae.demo as demo
    from causaldiffae.cli import main

    monkeypatch.setattr(demo, "embedded_test_digits", lambda *a, **k: pytest.fail("built the test digits"))
    report = tmp_path / "report"
    report.mkdir()
    (report / "report.md").write_text("an evaluation")
    assert main(["demo", "--out", str(report), "--no-progress"]) == 2
    assert "holds files the demo did not write, so it is not an earlier demo output" in capsys.readouterr().err
    assert [p.name for p in report.iterdir()] == ["report.md"] and (report / "report.md").read_text() == "an evaluation"
    interrupted = tmp_path / "demo_out"
    interrupted.mkdir()
    (interrupted / "do_thickness.png").write_bytes(b"grid")  # a demo stopped while scoring: grids, no scores yet
    (report / "scores.json").write_text("{}")  # and an earlier demo's whole folder (report.md, scores.json)
    for folder in (interrupted, report):  # both accepted: the demo goes on to build its digits
        with pytest.raises(pytest.fail.Exception, match="built the test digits"):
            main(["demo", "--out", str(folder), "--no-progress"])


def test_demo_refuses_data_that_is_not_morphomnist(tmp_path, capsys):
    from causaldiffae.cli import main
    from causaldiffae.data.pendulum import generate

    data = tmp_path / "pendulum"
    generate(data, limit=8, workers=1)
    capsys.readouterr()  # the generator's own bar
    assert main(["demo", "--out", str(tmp_path / "demo"), "--data", str(data), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "a pendulum dataset; the shipped model is for MorphoMNIST" in err[0], err


@pytest.fixture
def three_digits(tmp_path):
    """A MorphoMNIST folder of three test digits (and the same three as its train split)."""
    from causaldiffae.data.idx import write_idx

    images, digits = embedded_source()["test"]
    morphed, labels = generate_split(images[:3], "test", seed=0, progress=False)
    data = tmp_path / "mm"
    data.mkdir()
    rows = ["index,thickness,intensity"] + [f"{i},{t},{v}" for i, (t, v) in enumerate(labels)]
    for prefix in ("train", "t10k"):  # the train labels give the folder its statistics
        write_idx(data / f"{prefix}-images-idx3-ubyte.gz", morphed)
        write_idx(data / f"{prefix}-labels-idx1-ubyte.gz", digits[:3].astype(np.uint8))
        (data / f"{prefix}-morpho.csv").write_text("\n".join(rows) + "\n")
    return data


def test_an_interrupted_rerun_leaves_no_old_report_and_reruns_into_the_current_folder_or_a_link(three_digits, tmp_path, monkeypatch):
    import causaldiffae.counterfactual
    from causaldiffae.cli import main

    out = tmp_path / "demo"
    argv = ["demo", "--data", str(three_digits), "--n", "2", "--grid", "1", "--steps", "2", "--no-progress"]
    assert main([*argv, "--out", str(out)]) == 0 and (out / "bar_resamples.png").is_file()
    real_abduct = causaldiffae.counterfactual.abduct
    with monkeypatch.context() as patch:
        patch.setattr(causaldiffae.counterfactual, "abduct", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt()))
        assert main([*argv, "--out", str(out)]) == 130
    assert not any((out / n).exists() for n in ("report.md", "scores.json", "bar_resamples.png"))  # no scores of the run before
    assert causaldiffae.counterfactual.abduct is real_abduct
    link = tmp_path / "link"
    link.symlink_to(out)
    assert main([*argv, "--out", str(link)]) == 0 and (out / "report.md").is_file()
    monkeypatch.chdir(out)  # the demo writes its files in place, so its own folder may be the current one
    assert main([*argv, "--out", "."]) == 0


def test_demo_says_when_n_exceeds_the_split(three_digits, tmp_path, capsys):
    from causaldiffae.cli import main

    data = three_digits
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--data", str(data), "--n", "4", "--grid", "2", "--steps", "5", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "scoring 3 test digits (--n 4, but the split has 3)" in printed
    assert "Scored on 3 test digits" in (out / "report.md").read_text()

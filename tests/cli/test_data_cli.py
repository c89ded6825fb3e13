"""``causaldiffae data <dataset>`` end to end through the CLI entry point."""

import json

import pytest

from causaldiffae.cli import main


def _snapshot(folder):
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.iterdir())}


def test_morphomnist_cli_builds_and_refuses_to_overwrite(tmp_path, capsys):
    out = tmp_path / "morpho"
    assert main(["data", "morphomnist", "--out", str(out), "--limit", "5", "--workers", "1", "--seed", "3", "--no-progress"]) == 0
    printed = capsys.readouterr()
    assert "5 train / 5 test digits" in printed.out and printed.err == ""
    meta = json.loads((out / "morphomnist.json").read_text())
    assert meta["seed"] == 3 and meta["graph"]["edges"] == ["thickness -> intensity"]
    before = _snapshot(out)

    assert main(["data", "morphomnist", "--out", str(out), "--limit", "5", "--workers", "1", "--seed", "4"]) == 2
    err = capsys.readouterr().err.strip()
    assert "already exists" in err and "--force" in err and len(err.splitlines()) == 1
    assert _snapshot(out) == before  # untouched

    assert main(["data", "morphomnist", "--out", str(out), "--limit", "5", "--workers", "1", "--seed", "4", "--force"]) == 0
    assert json.loads((out / "morphomnist.json").read_text())["seed"] == 4
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folders left

    capsys.readouterr()
    other = tmp_path / "my-work"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    assert main(["data", "morphomnist", "--out", str(other), "--limit", "5", "--workers", "1", "--force"]) == 2
    err = capsys.readouterr().err.strip()
    assert "holds files but no morphomnist.json" in err and len(err.splitlines()) == 1
    assert (other / "notes.txt").read_text() == "keep me"  # --force never deletes a folder of other work


def test_morphomnist_cli_reports_a_missing_mnist_folder(tmp_path, capsys):
    code = main(["data", "morphomnist", "--out", str(tmp_path / "o"), "--mnist-dir", str(tmp_path / "none")])
    assert code == 2
    assert f"MNIST folder not found: {tmp_path / 'none'}" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_a_pendulum_limit_past_the_grid_is_noted(tmp_path, capsys, monkeypatch):
    import causaldiffae.data.pendulum as pendulum

    monkeypatch.setattr(pendulum, "generate", lambda *a, **k: {"counts": {"train": 5482, "test": 1826}})
    assert main(["data", "pendulum", "--out", str(tmp_path / "p"), "--limit", "99999"]) == 0
    assert "note: --limit 99999 covers the whole grid of 7308 images" in capsys.readouterr().err


@pytest.mark.parametrize("dataset, name", [("morphomnist", "MorphoMNIST"), ("pendulum", "Pendulum"), ("circuit", "CausalCircuit")])
def test_every_builder_takes_the_same_output_options_worded_alike(dataset, name, capsys):
    from causaldiffae.cli import build_parser

    args = build_parser().parse_args(["data", dataset, "--out", "somewhere", "--workers", "2", "--force", "--no-progress"])
    assert (str(args.out), args.workers, args.force, args.no_progress) == ("somewhere", 2, True, True)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["data", dataset, "--help"])
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps help lines
    assert "worker processes (default: all CPUs)" in text and "no progress bars" in text
    assert f"replace an earlier {name} folder at --out (the whole folder)" in text

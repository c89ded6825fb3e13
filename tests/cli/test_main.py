"""The ``causaldiffae`` entry point itself."""

import subprocess
import sys

import pytest
from cli_fixtures import error_lines

from causaldiffae.cli import main


def test_building_the_parser_imports_no_heavy_library():
    # --help and argument errors must answer at once: torch and diffusers load only in handlers.
    code = "import sys; from causaldiffae.cli import build_parser; build_parser(); print(sorted({'torch', 'diffusers', 'matplotlib'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_warnings_print_as_one_line_naming_the_command(monkeypatch, capsys):
    import warnings

    import causaldiffae.cli.demo as demo_cli
    from causaldiffae.cli import main

    monkeypatch.setattr(demo_cli, "run", lambda args: warnings.warn("bf16 is emulated here", stacklevel=2) or 0)
    assert main(["demo"]) == 0
    assert capsys.readouterr().err == "causaldiffae demo: warning: bf16 is emulated here\n"
    assert warnings.showwarning.__name__ != "show"  # restored after the command


def test_sigterm_ends_a_command_like_ctrl_c_leaving_no_temporary_files(tmp_path, monkeypatch, capsys):
    import os
    import signal

    import causaldiffae.data.pendulum as pendulum
    from causaldiffae.cli import main

    write_labels = pendulum._write_labels

    def terminated_while_writing(*args):
        os.kill(os.getpid(), signal.SIGTERM)
        return write_labels(*args)

    monkeypatch.setattr(pendulum, "_write_labels", terminated_while_writing)
    before = signal.getsignal(signal.SIGTERM)
    assert main(["data", "pendulum", "--out", str(tmp_path / "p"), "--limit", "2", "--workers", "1", "--no-progress"]) == 143
    assert capsys.readouterr().err.endswith("terminated\n")
    assert list(tmp_path.iterdir()) == []  # neither the output nor its temporary folder
    assert signal.getsignal(signal.SIGTERM) is before



@pytest.mark.parametrize(
    "argv, message",
    [
        (["evaluate", "--device", "banana"], "--device 'banana': not a torch device"),
        (["evaluate", "--out", "FILE"], "FILE exists and is not a folder"),
        (["predictors", "--lr", "-1"], "--lr must be positive, got -1"),
        (["predictors", "--batch-size", "1"], "--batch-size must be at least 2, got 1"),  # BatchNorm would skip every batch
        (["predictors", "--seed", "100000000000000000000"], "--seed must lie in 0..2**63-1, got 100000000000000000000"),
        (["predictors", "--out", "FILE"], "FILE exists and is not a folder"),
        (["predictors", "--resolution", "0"], "resolution must be a positive number of pixels, got 0"),
        (["data", "check", "DATA", "--resolution", "-5"], "resolution must be a positive number of pixels, got -5"),
        (["data", "check", "DATA", "--resolution", "2000"], "resolution 2000 is larger than the 1024 pixels this library trains at"),
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

"""The ``causaldiffae`` entry point itself."""

import argparse
import importlib
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Iterator

import pytest
import torch
from cli_fixtures import error_lines
from doc_fixtures import DOC_PAGES, prose

from causaldiffae.cli import main

ROOT = Path(__file__).resolve().parents[2]


def test_building_the_parser_imports_no_heavy_library():
    # --help and argument errors must answer at once: torch and diffusers load only in handlers.
    code = "import sys; from causaldiffae.cli import build_parser; build_parser(); print(sorted({'torch', 'diffusers', 'matplotlib'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_a_missing_input_folder_is_refused_before_torch_loads(tmp_path):
    """torch and diffusers take seconds to import: a mistyped --run, --predictors, --data or --images fails before them."""
    gone, file = tmp_path / "gone", tmp_path / "config.yaml"
    file.write_text("seed: 0\n")
    cases = [
        (["evaluate", "--run", gone, "--predictors", tmp_path, "--data", tmp_path, "--out", tmp_path / "r"], f"run folder not found: {gone}"),
        (["evaluate", "--run", tmp_path, "--predictors", gone, "--data", tmp_path, "--out", tmp_path / "r"], f"predictors folder not found: {gone}"),
        (["counterfactual", "--run", file, "--data", tmp_path, "--do", "thickness=2", "--out", tmp_path / "g.png"],
         f"{file} is a file, not a run folder; pass the folder that holds it ({tmp_path})"),
        (["counterfactual", "--run", tmp_path, "--data", gone, "--do", "thickness=2", "--out", tmp_path / "g.png"], f"dataset folder not found: {gone}"),
        (["counterfactual", "--run", tmp_path, "--images", gone, "--do", "thickness=2", "--out", tmp_path / "g.png"], f"{gone}: image file not found"),
        (["predictors", "--data", gone, "--out", tmp_path / "p"], f"dataset folder not found: {gone}"),
        (["demo", "--data", gone, "--out", tmp_path / "d"], f"dataset folder not found: {gone}"),
        (["train", "--preset", "morphomnist-cpu", "--data", gone, "--out", tmp_path / "t"], f"dataset folder not found: {gone}"),
    ]
    code = ("import sys; from causaldiffae.cli import main\n"
            f"for argv in {[[str(a) for a in argv] for argv, _ in cases]!r}:\n"
            "    print(main(argv), sorted({'torch', 'diffusers'} & set(sys.modules)), flush=True)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.splitlines() == ["2 []"] * len(cases), done.stderr
    assert done.stderr.splitlines() == [f"causaldiffae {argv[0]}: error: {message}" for argv, message in cases]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml"]


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
        pytest.param(["evaluate", "--device", "cuda:1"], "--device cuda:1: no CUDA device here",
                     marks=pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")),
        pytest.param(["evaluate", "--device", "mps"], "--device mps: MPS is not available here",
                     marks=pytest.mark.skipif(torch.backends.mps.is_available(), reason="this machine has MPS")),
        (["evaluate", "--threads", "0"], "--threads must be at least 1, got 0"),
        (["predictors", "--threads", "-2"], "--threads must be at least 1, got -2"),
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


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc, where even root creates nothing")
@pytest.mark.parametrize("command", ["train", "predictors", "evaluate", "counterfactual", "data", "demo"])
def test_an_output_where_nothing_can_be_written_is_refused_before_any_work(setup, capsys, monkeypatch, command):
    """The writes come last: training predictors, evaluating, decoding or building digits first would be lost."""
    import causaldiffae.data.morphomnist as morphomnist
    import causaldiffae.evaluation.predictors as predictors
    from causaldiffae.models import CausalDiffAE

    _, data, run, pred = setup
    for owner, name in ((CausalDiffAE, "eps"), (CausalDiffAE, "loss"), (predictors, "train_predictors"), (morphomnist, "generate_split")):
        monkeypatch.setattr(owner, name, lambda *a, **k: pytest.fail("the work started"))
    out = Path("/proc/causaldiffae-out") / ("grid.png" if command == "counterfactual" else "out")
    argv = {
        "train": ["train", "--preset", "morphomnist-cpu", "--data", str(data)],
        "predictors": ["predictors", "--data", str(data)],
        "evaluate": ["evaluate", "--run", str(run), "--predictors", str(pred), "--data", str(data)],
        "counterfactual": ["counterfactual", "--run", str(run), "--data", str(data), "--do", "a=2"],
        "data": ["data", "morphomnist"],
        "demo": ["demo"],
    }[command]
    assert main([*argv, "--out", str(out), "--no-progress"]) == 2
    errors = error_lines(capsys)
    assert len(errors) == 1 and f"{out}: cannot write in /proc (" in errors[0], errors


def test_interrupting_a_parallel_build_twice_stops_it_at_once_leaving_nothing(tmp_path):
    """A second Ctrl-C used to hang for ever: the parent waited for every queued chunk."""
    import os
    import signal
    import time

    out = tmp_path / "mm"
    proc = subprocess.Popen([sys.executable, "-m", "causaldiffae", "data", "morphomnist", "--out", str(out), "--workers", "2",
                             "--no-progress"], stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 60
    while not subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True).stdout and time.monotonic() < deadline:
        time.sleep(0.05)  # until the workers are drawing digits
    time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGINT)  # a terminal's Ctrl-C reaches the whole group
    time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)
    started = time.monotonic()
    try:
        # 130, or killed by the second SIGINT itself when it lands after the cleanup, as Python exits (a shell reads both as 130)
        assert proc.wait(timeout=20) in (130, -signal.SIGINT)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert time.monotonic() - started < 5
    err = proc.communicate()[1].decode()  # read to the end, the pipe closed
    assert err.strip().splitlines()[-1] == "interrupted" and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []
    assert not subprocess.run(["pgrep", "-g", str(proc.pid)], capture_output=True).stdout  # no worker left behind


def test_version_is_the_installed_package_version_and_help_points_a_newcomer_to_the_demo(capsys):
    from importlib.metadata import version

    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0 and capsys.readouterr().out == f"causaldiffae {version('causaldiffae')}\n"
    with pytest.raises(SystemExit):
        main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "'causaldiffae demo' shows the shipped" in text and "``" not in text  # no docstring markup in --help


def test_abbreviated_options_are_refused(capsys):
    with pytest.raises(SystemExit):
        main(["evaluate", "--run", "r", "--predictors", "p", "--data", "d", "--out", "o", "--seed", "3"])
    assert "causaldiffae evaluate: error: unrecognized arguments: --seed 3" in capsys.readouterr().err


def test_an_unknown_option_is_reported_by_its_command(capsys):
    with pytest.raises(SystemExit):
        main(["data", "check", "d", "--bogus"])
    err = capsys.readouterr().err
    assert "usage: causaldiffae data check" in err and "causaldiffae data check: error: unrecognized arguments: --bogus" in err


def test_a_file_system_error_is_one_line(monkeypatch, capsys):
    import causaldiffae.cli.demo as demo_cli

    def denied(args):
        raise PermissionError(13, "Permission denied", "/ro/report.md")

    monkeypatch.setattr(demo_cli, "run", denied)
    assert main(["demo"]) == 2
    assert capsys.readouterr().err == "causaldiffae demo: error: [Errno 13] Permission denied: '/ro/report.md'\n"


def test_guarded_runs_any_body_as_a_command_is_run(capsys):
    from causaldiffae.cli import guarded
    from causaldiffae.errors import UserError

    def bad():
        raise UserError("--data nowhere: dataset folder not found")

    assert guarded(bad, lambda: "script.py") == 2
    assert capsys.readouterr().err == "script.py: error: --data nowhere: dataset folder not found\n"
    assert guarded(lambda: None, lambda: "script.py") == 0 and guarded(lambda: 3, lambda: "script.py") == 3


def test_a_benchmark_script_prints_bad_input_as_one_line(tmp_path):
    script = ROOT / "benchmarks" / "morphomnist_oracle.py"
    done = subprocess.run([sys.executable, str(script), "--data", str(tmp_path / "nowhere")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert done.stderr == f"morphomnist_oracle.py: error: dataset folder not found: {tmp_path / 'nowhere'}\n"


@pytest.mark.parametrize("signum, status", [("SIGINT", 130), ("SIGTERM", 143)])
def test_a_further_signal_on_the_way_out_ends_the_process_instead_of_a_traceback(monkeypatch, signum, status):
    import os
    import signal

    import causaldiffae.cli as cli
    import causaldiffae.cli.demo as demo_cli

    seen = []
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    monkeypatch.setattr(demo_cli, "run", lambda args: os.kill(os.getpid(), getattr(signal, signum)))
    monkeypatch.setattr(cli, "print", lambda *args, **kwargs: seen.append((signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM))),
                        raising=False)
    assert main(["demo"]) == status
    assert seen == [(signal.SIG_DFL, signal.SIG_DFL)]  # from when it says why it stopped
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before  # put back for an in-process caller


def test_the_entry_point_imports_no_library_until_it_runs():
    """Ctrl-C is one line from the moment main() starts; before it, Python would print a traceback."""
    code = ("import sys; import causaldiffae.cli; print(sorted({'yaml', 'numpy', 'causaldiffae.graph'} & set(sys.modules))); "
            "from causaldiffae import CausalGraph, GraphError; print(CausalGraph.__module__, GraphError.__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.splitlines()
    assert out == ["[]", "causaldiffae.graph GraphError"]


def _code(text: str) -> tuple[list[str], list[str]]:
    """A markdown page's code: its fenced blocks, and its inline spans outside them."""
    fenced = re.findall(r"```.*?\n(.*?)```", text, flags=re.S)
    return fenced, re.findall(r"`([^`]+)`", prose(text))


def _documented_commands(text: str, program: str) -> list[str]:
    """What follows ``program`` (a regex) in each command in the code of a markdown page: lines of
    fenced blocks and whole inline spans (which may wrap), cut at a shell comment or the next command
    of a pipeline."""
    fenced, inline = _code(text)
    lines = [line for block in fenced for line in block.replace("\\\n", " ").splitlines()]
    lines += [" ".join(span.split()) for span in inline]
    return [
        re.split(r"\s(?:#|&&|\|\|?|;|>)\s?", m.group(1))[0].strip()
        for line in lines
        for m in re.finditer(rf"(?:^|[\s(/]){program}(.*)", line)
    ]


def _options_of(parser: argparse.ArgumentParser, words: list[str]) -> tuple[str, dict[str, argparse.Action]]:
    """The (sub)command ``words`` names, walking down subparsers, and the options it takes."""
    name = []
    for word in words:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs or word not in subs[0].choices:
            break
        parser = subs[0].choices[word]
        name.append(word)
    return " ".join(name), _actions(parser)


def _actions(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {s: a for a in parser._actions for s in a.option_strings}


def _misquoted(words: list[str], actions: dict[str, argparse.Action]) -> list[str]:
    """Options in ``words`` that the parser lacks, and values outside an option's choices (a
    placeholder such as RUN or FILE, in capitals, stands for any value)."""
    wrong = []
    for i, word in enumerate(words):
        if not word.startswith("--"):
            continue
        flag, _, value = word.partition("=")
        action = actions.get(flag)
        if action is None:
            wrong.append(flag)
            continue
        value = value or (words[i + 1] if i + 1 < len(words) and action.nargs != 0 else "")
        if action.choices is not None and value and not value.isupper() and value not in map(str, action.choices):
            wrong.append(f"{flag} {value}")
    return wrong


def _documented_cli_commands() -> Iterator[tuple[Path, str, list[str], dict[str, argparse.Action]]]:
    """``(page, command, words, options)`` for each ``causaldiffae`` line of DOC_PAGES that names a command."""
    from causaldiffae.cli import build_parser

    parser = build_parser()
    for page in DOC_PAGES:
        for line in _documented_commands(page.read_text(), "causaldiffae "):
            words = line.split()
            command, options = _options_of(parser, words)
            if command:
                yield page, command, words, options


def test_every_option_the_docs_give_a_command_is_one_it_takes():
    """README, the result pages and the shipped model's TRAINING.md quote commands to copy: an option
    renamed or removed in the CLI, or a choice dropped, must fail here, not in a reader's shell."""
    checked, unknown = 0, []
    for page, command, words, options in _documented_cli_commands():
        checked += sum(w.startswith("--") for w in words)
        unknown += [f"{page.relative_to(ROOT)}: causaldiffae {command} {wrong}" for wrong in _misquoted(words, options)]
    assert checked > 200
    assert unknown == []


def test_every_config_override_the_docs_give_train_is_a_key_with_a_valid_value():
    """`train --preset P key=value ...` lines apply to P (to the defaults where no preset is named);
    a renamed config key or a value its section now refuses must fail here. Values that are shell
    variables ($P) are skipped."""
    from causaldiffae.config import ExperimentConfig, load_config
    from causaldiffae.errors import UserError

    applied, refused = 0, []
    for page, command, words, _ in _documented_cli_commands():
        if command != "train":
            continue
        overrides = [w for w in words if re.fullmatch(r"\w+(\.\w+)?=[^$]*", w)]
        preset = words[words.index("--preset") + 1] if "--preset" in words else None
        try:
            (load_config(preset) if preset else ExperimentConfig()).with_overrides(overrides)
        except UserError as e:
            refused.append(f"{page.relative_to(ROOT)}: {e}")
        applied += len(overrides)
    assert applied > 30
    assert refused == []


def test_the_docs_check_reads_commands_and_sees_an_unknown_option_or_choice():
    text = "Run `causaldiffae demo --out d` or\n```bash\ncausaldiffae data morphomnist --out x \\\n  --bogus 1  # note --not-this\n```\n"
    assert _documented_commands(text, "causaldiffae ") == ["data morphomnist --out x    --bogus 1", "demo --out d"]
    from causaldiffae.cli import build_parser

    parser = build_parser()
    command, options = _options_of(parser, ["data", "morphomnist", "--out", "x", "--bogus", "1"])
    assert command == "data morphomnist" and _misquoted(["--out", "x", "--bogus", "1"], options) == ["--bogus"]
    words = "counterfactual --run RUN --abduction ddpm --abduction=dpm --abduction MODE --no-progress --out o.png".split()
    command, options = _options_of(parser, words)
    assert command == "counterfactual" and _misquoted(words, options) == ["--abduction dpm"]


class _Parsed(Exception):
    """Raised in place of parsing, to hand a benchmark's parser back before it does any work."""

    def __init__(self, parser: argparse.ArgumentParser) -> None:
        self.parser = parser


def _import_benchmark(script: str, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """``benchmarks/<script>`` as a module; it and the helper modules it imports are dropped from
    sys.modules when the test ends, so their top-level names shadow nothing later."""
    before = set(sys.modules)
    module = importlib.import_module(script.removesuffix(".py"))
    for name in set(sys.modules) - before:
        if str(getattr(sys.modules[name], "__file__", "")).startswith(str(ROOT / "benchmarks")):
            monkeypatch.setitem(sys.modules, name, sys.modules.pop(name))  # recorded as absent: removed at teardown
    return module


def _benchmark_options(script: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, argparse.Action]:
    """The options of ``benchmarks/<script>``: its parser is caught at parse_args, so nothing is measured."""

    def caught(self: argparse.ArgumentParser, *args: object, **kwargs: object) -> None:
        raise _Parsed(self)

    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    with monkeypatch.context() as patched:
        patched.setattr(argparse.ArgumentParser, "parse_args", caught)
        with pytest.raises(_Parsed) as parsed:
            _import_benchmark(script, monkeypatch).main()
    return _actions(parsed.value.parser)


def test_every_option_the_docs_give_a_benchmark_is_one_it_takes(monkeypatch):
    """The result pages cite `python benchmarks/....py` commands as the way to rerun their figures."""
    options: dict[str, dict[str, argparse.Action]] = {}
    checked, unknown = 0, []
    for page in DOC_PAGES:
        for line in _documented_commands(page.read_text(), r"python3? benchmarks/"):
            script, *words = line.split()
            if script not in options:
                assert (ROOT / "benchmarks" / script).is_file(), f"{page.relative_to(ROOT)}: no benchmarks/{script}"
                options[script] = _benchmark_options(script, monkeypatch)
            checked += sum(w.startswith("--") for w in words)
            unknown += [f"{page.relative_to(ROOT)}: benchmarks/{script} {wrong}" for wrong in _misquoted(words, options[script])]
    assert len(options) > 10 and checked > 50
    assert unknown == []


# The launchers' and pip's own options, which the docs quote beside ours.
OTHER_TOOLS_OPTIONS = {
    "--index-url", "--nproc_per_node", "--nnodes", "--node_rank", "--master_addr", "--master_port",  # pip, torchrun
    "--multi_gpu", "--num_processes", "--num_machines", "--machine_rank", "--main_process_ip", "--main_process_port",  # accelerate
}


def test_every_option_the_docs_name_anywhere_is_one_some_command_or_benchmark_takes(monkeypatch):
    """Prose names options outside a command ("`evaluate` with `--seeds 3`"): each option in the docs'
    code must still be one that a `causaldiffae` command, a benchmark script or a launcher takes."""
    from causaldiffae.cli import build_parser

    known = set(OTHER_TOOLS_OPTIONS)
    parsers = [build_parser()]
    while parsers:
        parser = parsers.pop()
        known |= set(_actions(parser))
        parsers += [sub for a in parser._actions if isinstance(a, argparse._SubParsersAction) for sub in a.choices.values()]
    for path in sorted((ROOT / "benchmarks").glob("*.py")):
        if "def main(" in path.read_text():  # evaluate_draw.py is the others' shared helper
            known |= set(_benchmark_options(path.name, monkeypatch))
    named, unknown = set(), []
    for page in DOC_PAGES:
        fenced, inline = _code(page.read_text())
        options = {o for span in fenced + inline for o in re.findall(r"(?<![\w-])--[a-zA-Z][\w-]*", span)}
        named |= options
        unknown += [f"{page.relative_to(ROOT)}: {o}" for o in sorted(options - known)]
    assert len(named) > 60
    assert unknown == []

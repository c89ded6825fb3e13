"""The ``causaldiffae`` entry point itself."""

import subprocess
import sys


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


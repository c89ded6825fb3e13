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

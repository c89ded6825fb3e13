"""The ``causaldiffae`` entry point itself."""

import subprocess
import sys


def test_building_the_parser_imports_no_heavy_library():
    # --help and argument errors must answer at once: torch and diffusers load only in handlers.
    code = "import sys; from causaldiffae.cli import build_parser; build_parser(); print(sorted({'torch', 'diffusers', 'matplotlib'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"

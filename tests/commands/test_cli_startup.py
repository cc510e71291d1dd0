"""What every ``pfepo`` command pays before it starts: the argument parser imports no heavy library.

The parser registers every subcommand; one registration importing pandas or pydantic at module level made
``pfepo --help`` take 0.79 s and every ``pfepo predict`` of a small file ~0.3 s more (twenty-seventh session:
0.08 s now). Checked in a fresh interpreter, where nothing else has imported them.
"""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("pandas", "pydantic", "scipy", "sklearn", "statsmodels", "os_ken")


def test_building_the_parser_imports_no_heavy_library():
    code = ("import sys; from pfepo.cli import build_parser; build_parser(); "
            f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "", f"imported while building the parser: {out.stdout.strip()}"


def test_help_still_lists_the_scenarios_of_generate_traces(capsys):
    from pfepo.cli import main
    from pfepo.traces.generate import SCENARIOS

    try:
        main(["generate-traces", "--help"])
    except SystemExit:
        pass
    out = capsys.readouterr().out
    assert all(name in out for name in SCENARIOS)

"""The command line starts at once: what ``--help``, ``info`` and ``process`` import before they answer.

Each check runs a fresh interpreter (the test process has imported everything already) and
looks at ``sys.modules``: timings belong to benchmarks/bench_startup.py, but the import set is
what makes them, and it is deterministic.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from image2.cli.main import COMMANDS
from image2.cli.options import REFERENCE_TYPES_HELP
from image2.core.references import REFTYPES

REPO = Path(__file__).resolve().parents[1]

HEAVY = ("numpy", "astropy", "gwcs", "scipy", "matplotlib", "asdf", "structlog", "rich", "watchdog", "dask",
         "distributed", "yaml", "crds", "stdatamodels")
"""Never needed to show help."""

PIPELINE = ("gwcs", "scipy", "matplotlib", "asdf", "astropy.modeling", "drizzle")
"""Needed to calibrate, never to describe a file."""

PROBE = '''
import json, sys
sys.argv = ["image2", *json.loads(sys.argv[1])]
from image2.cli.main import main
try:
    main()
except SystemExit:
    pass
sys.stdout.flush()
print("\\nMODULES " + json.dumps(sorted(sys.modules)), file=sys.stderr)
'''


def imported_by(*args: str) -> tuple[set[str], str]:
    """Run ``image2 ARGS`` in a fresh interpreter; return the modules it imported and its stdout."""
    result = subprocess.run([sys.executable, "-c", PROBE, json.dumps(list(args))], capture_output=True, text=True,
                            cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=300)
    line = next(line for line in result.stderr.splitlines() if line.startswith("MODULES "))
    return set(json.loads(line.removeprefix("MODULES "))), result.stdout


def top_level(modules: set[str], names: tuple[str, ...]) -> set[str]:
    return {m for m in modules for name in names if m == name or m.startswith(name + ".")}


def test_top_level_help_lists_every_command_without_importing_any() -> None:
    modules, output = imported_by("--help")
    assert top_level(modules, HEAVY) == set()
    assert not any(m.startswith("image2.cli.") and m.split(".")[2] in COMMANDS for m in modules)
    for name, (_, short) in COMMANDS.items():
        assert f"{name}  " in output and short[:40] in " ".join(output.split()), name


@pytest.mark.parametrize("command", [*([name] for name in sorted(COMMANDS)), ["config", "show"]],
                         ids=lambda c: " ".join(c))
def test_subcommand_help_imports_nothing_heavy(command: list[str]) -> None:
    modules, output = imported_by(*command, "--help")
    assert "Usage: image2 " + " ".join(command) in output
    assert top_level(modules, HEAVY) == set()


def test_info_reads_headers_without_the_pipeline(rate_file: Path) -> None:
    modules, output = imported_by("info", str(rate_file))
    assert "NIRCAM NRCB1" in output and "stage-2 steps:" in output
    assert top_level(modules, PIPELINE) == set()


def test_process_logs_before_importing_the_pipeline(rate_file: Path, tmp_path: Path) -> None:
    probe = PROBE.replace("from image2.cli.main import main", '''from image2.cli import logs
first = []
emit = logs._StderrHandler.emit
def noting(self, record):
    if not first:
        first.append(sorted(m for m in sys.modules if m.split(".")[0] in ("gwcs", "scipy", "matplotlib")))
        print("FIRST " + json.dumps([self.format(record), first[0]]), file=sys.stderr)
    emit(self, record)
logs._StderrHandler.emit = noting
from image2.cli.main import main''')
    result = subprocess.run([sys.executable, "-c", probe, json.dumps(["--log-format", "json", "process", str(rate_file),
                                                                      "-o", str(tmp_path / "out")])],
                            capture_output=True, text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                            timeout=300)
    line = next(line for line in result.stderr.splitlines() if line.startswith("FIRST "))
    message, heavy = json.loads(line.removeprefix("FIRST "))
    assert json.loads(message)["event"] == "start" and heavy == []
    assert "gwcs" in imported_by("process", str(rate_file), "-o", str(tmp_path / "out2"))[0]  # it does run


def test_a_process_run_leaves_what_only_options_need_unimported(rate_file: Path, tmp_path: Path) -> None:
    declined = [arg for reftype in REFTYPES if reftype != "dark" for arg in ("--ref", f"{reftype}=N/A")]
    modules, _ = imported_by("process", str(rate_file), "-o", str(tmp_path / "out"), *declined)
    assert (tmp_path / "out" / rate_file.name.replace("_rate", "_i2d")).is_file()  # resampled
    assert top_level(modules, ("scipy.interpolate", "matplotlib")) == set()  # a coarse pixel map, previews


def test_ref_help_names_every_reference_type() -> None:
    assert REFERENCE_TYPES_HELP.split(", ") == list(REFTYPES)

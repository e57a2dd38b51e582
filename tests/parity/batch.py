"""What the jwst and Liger parity harnesses share: a batch of JSON jobs run by a driver script in ONE
subprocess of another environment, and the result of each job."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

R = TypeVar("R", bound="JobResult")


@dataclass(frozen=True)
class JobResult:
    """The outcome of one job: its output files, or the traceback the driven pipeline raised."""

    name: str
    ok: bool
    outputs: tuple[Path, ...]
    error: str | None
    seconds: float
    log: Path

    label: ClassVar[str] = "driver"

    def check(self: R) -> R:
        """Fail the test with the pipeline's traceback unless the job succeeded."""
        if not self.ok:
            raise AssertionError(f"{self.label} job {self.name!r} failed (log: {self.log}):\n{self.error}")
        return self


@dataclass
class JobBatch:
    """Jobs for one driver script, run together in one subprocess; outputs go under ``workdir``."""

    workdir: Path
    jobs: list[dict[str, Any]] = field(default_factory=list)

    label: ClassVar[str] = "driver"

    def __post_init__(self) -> None:
        self.workdir = Path(self.workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)

    def _add(self, job: dict[str, Any]) -> None:
        if any(j["name"] == job["name"] for j in self.jobs):
            raise ValueError(f"duplicate {self.label} job name {job['name']!r}")
        self.jobs.append(job)

    def _run(self, python: str, driver: Path, arguments: Sequence[str], env: Mapping[str, str], timeout: float,
             result: type[R]) -> dict[str, R]:
        """Run ``driver`` on the queued jobs in one subprocess (``env`` added to the environment, less its
        CRDS_* and PYTHON* variables); the results by job name. ``<label>.log`` holds its output."""
        jobs_file = self.workdir / "jobs.json"
        results_file = self.workdir / "results.json"
        log = self.workdir / f"{self.label.lower()}.log"
        jobs_file.write_text(json.dumps(self.jobs, indent=1))
        results_file.unlink(missing_ok=True)
        environment = {k: v for k, v in os.environ.items() if not k.startswith(("CRDS_", "PYTHON"))}
        environment.update(env)
        with log.open("w") as handle:
            completed = subprocess.run([python, str(driver), str(jobs_file), str(results_file), *arguments],
                                       cwd=self.workdir, env=environment, stdout=handle, stderr=subprocess.STDOUT,
                                       timeout=timeout, check=False)
        if not results_file.exists():
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-40:])
            raise AssertionError(f"the {self.label} driver ({python}) exited with {completed.returncode} before "
                                 f"running any job; log {log}:\n{tail}")
        if completed.returncode != 0:
            raise AssertionError(f"the {self.label} driver exited with {completed.returncode}; log {log}")
        entries = json.loads(results_file.read_text())
        return {e["name"]: result(e["name"], e["ok"], tuple(Path(p) for p in e["outputs"]), e["error"],
                                  e["seconds"], log) for e in entries}

"""Hostile inputs through one ``image2 watch`` run: each bad file fails with its reason, the good ones
are done, and the daemon (its coordinator and workers together) stays alive within bounded memory."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from tests.hostile.corpus import CASES, TRACEBACK, rate
from tests.watch.test_acceptance import DONE, FAILED, WatchProcess, count_in, ledger_rows, wait_until

pytestmark = pytest.mark.slow

IGNORED = ("fifo-rate", "dev-zero-as-rate")
"""Not regular files: the daemon never opens them (opening a FIFO blocks, a device never ends) and leaves them be."""

EXPECTED = {
    "random-bytes": "not a readable FITS file",
    "gzip-named-fits": "compressed FITS files are not read",
    "truncated-data": "truncated",
    "sparse-40000x40000": "exceed the limit",
    "tile-compressed-20000x20000": "exceed the limit",
    "asdf-zlib-3GiB-block": "embedded ASDF block",
    "sci-as-bintable": "not an image",
    "naxis3-zero": "empty axis",
    "ra-ref-nan": "Unparsable card (RA_REF)",
    "nirspec-fixed-slit": "NRS_FIXEDSLIT",
    "cal-as-input": "already calibrated",
    "subsize1-disagrees": "SUBSIZE1=64",
    "asdf-corrupt-yaml": "embedded ASDF tree cannot be read",
    "asdf-provenance-nonsense": "not a step record",
    "asdf-wcsinfo-5": "not a mapping",
    "association-100k-brackets": "nested too deeply",
}
"""The cases dropped into the watched folder and the reason each must fail with."""

RSS_LIMIT = 2**30


def test_one_daemon_run_over_hostile_files(tmp_path: Path) -> None:
    staging = tmp_path / "staging"
    staging.mkdir()
    dropped: dict[str, str] = {}
    ignored = []
    for case in CASES:
        if case.name in IGNORED:
            (made,) = case.make(staging)
            ignored.append(staging / (case.name.replace("-", "_") + "_rate.fits"))
            os.replace(made, ignored[-1])
            continue
        if case.name not in EXPECTED:
            continue
        folder = staging / case.name
        folder.mkdir()
        (made,) = case.make(folder)
        suffix = "_asn.json" if made.name.endswith(".json") else "_rate.fits"
        name = case.name.replace("-", "_") + suffix
        os.replace(made, staging / name)
        dropped[name] = EXPECTED[case.name]
    good = [rate(staging, f"good{i}_rate.fits", seed=i) for i in range(2)]
    quarantine = tmp_path / "quarantine"
    daemon = WatchProcess(tmp_path, "--settle", "1", "--quarantine", str(quarantine))
    for path in [*(staging / name for name in dropped), *good, *ignored]:
        os.replace(path, daemon.inbox / path.name)
    total = len(dropped) + len(good)
    wait_until(lambda: count_in(daemon.output, DONE) + count_in(daemon.output, FAILED) >= total, timeout=240,
               what=f"{total} inputs ended")
    assert daemon.process.poll() is None, "the daemon died"
    daemon.process.send_signal(signal.SIGTERM)
    _, status, usage = os.wait4(daemon.process.pid, 0)
    daemon.process.returncode = os.waitstatus_to_exitcode(status)
    assert daemon.process.returncode == 0
    assert usage.ru_maxrss * 1024 < RSS_LIMIT, f"the daemon peaked at {usage.ru_maxrss / 1024:.0f} MiB"
    rows = {row.path.name: row for row in ledger_rows(daemon.output)}
    assert {name: rows[name].state for name in (p.name for p in good)} == {p.name: DONE for p in good}
    reasons = {name: rows[name].error for name in dropped}
    for name, fragment in dropped.items():
        assert rows[name].state == FAILED, (name, rows[name])
        assert fragment.lower() in (reasons[name] or "").lower(), (name, reasons[name])
        assert rows[name].quarantine is not None, (name, rows[name])
    assert TRACEBACK not in daemon.log_path.read_text(errors="replace")
    for path in ignored:
        assert path.name not in rows and os.path.lexists(daemon.inbox / path.name), path.name
    assert set(rows) == {*dropped, *(p.name for p in good)}

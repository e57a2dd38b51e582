"""``image2 status``: counts, throughput, failures, queue — for people and as JSON."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from click.testing import CliRunner

from image2.cli.main import cli
from image2.watch.identity import FileStat
from image2.watch.ledger import EXPOSURE, QUEUED, WAITING, Ledger

STAT = FileStat(10, 20, 30)


def _ledger(folder: Path, now: float) -> None:
    ledger = Ledger.in_folder(folder)
    ledger.register_daemon(os.getpid(), ["/in"], 2, "0.1", now=now - 600)
    ledger.beat(1, 3, now=now - 5)
    for number in range(12):
        item = ledger.add(Path(f"/in/d{number}_rate.fits"), EXPOSURE, STAT, f"h{number}", QUEUED, "event",
                          now=now - 500)
        ledger.start(item.id, now=now - 400)
        ledger.finish(item.id, [f"/out/d{number}_cal.fits"], now=now - 30 if number < 3 else now - 300)
    bad = ledger.add(Path("/in/bad_rate.fits"), EXPOSURE, STAT, "hb", QUEUED, "event", now=now - 100)
    ledger.fail(bad.id, "truncated FITS file: data of HDU 2 needs 9000 bytes, the file has 4000",
                quarantine="/q/bad_rate.fits", now=now - 90)
    ledger.start(ledger.add(Path("/in/r_rate.fits"), EXPOSURE, STAT, "hr", QUEUED, "event", now=now - 20).id,
                 now=now - 10)
    ledger.add(Path("/in/q_rate.fits"), EXPOSURE, STAT, "hq", QUEUED, "event", now=now - 8)
    retry = ledger.add(Path("/in/t_rate.fits"), EXPOSURE, STAT, "ht", QUEUED, "event", now=now - 8)
    ledger.start(retry.id, now=now - 7)
    ledger.queue(retry.id, retry_at=now + 40, error="reference folder /refs is missing", now=now - 6)
    ledger.add(Path("/in/o_asn.json"), "association", STAT, "ha", WAITING, "event", now=now - 50)
    ledger.close()


def test_status_text(tmp_path: Path) -> None:
    _ledger(tmp_path, time.time())
    result = CliRunner().invoke(cli, ["status", str(tmp_path)])
    assert result.exit_code == 0, result.output
    text = result.output
    assert f"running (pid {os.getpid()}" in text
    assert "items     waiting 1  queued 2  running 1  done 12  failed 1" in text
    assert "3 in the last minute (3.0/min), 12 in the last 10 minutes (1.2/min)" in text
    assert "/in/r_rate.fits  attempt 1" in text
    assert "/in/q_rate.fits  queued" in text
    assert "/in/t_rate.fits  retry in" in text and "(attempt 2): reference folder /refs is missing" in text
    assert "/in/o_asn.json  since" in text
    assert ("/in/bad_rate.fits: truncated FITS file: data of HDU 2 needs 9000 bytes, the file has 4000 "
            "[quarantined as /q/bad_rate.fits]") in text


def test_status_json(tmp_path: Path) -> None:
    now = time.time()
    _ledger(tmp_path, now)
    result = CliRunner().invoke(cli, ["status", str(tmp_path), "--json", "--limit", "1"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert document["counts"] == {"waiting": 1, "queued": 2, "running": 1, "done": 12, "failed": 1}
    assert document["done"] == {"last_minute": 3, "last_10_minutes": 12, "last_hour": 12}
    assert document["throughput_per_minute"]["last_10_minutes"] == 1.2
    assert document["daemon"]["state"] == "running" and document["daemon"]["workers"] == 2
    assert [i["path"] for i in document["queued"]] == ["/in/q_rate.fits"]
    failure = document["recent_failures"][0]
    assert (failure["path"], failure["quarantine"]) == ("/in/bad_rate.fits", "/q/bad_rate.fits")
    assert failure["error"].startswith("truncated FITS file")


def test_status_of_a_stopped_or_dead_daemon(tmp_path: Path) -> None:
    ledger = Ledger.in_folder(tmp_path)
    ledger.register_daemon(2**22 + 12345, ["/in"], 1, "0.1")
    ledger.close()
    assert "not running: its process is gone" in CliRunner().invoke(cli, ["status", str(tmp_path)]).output
    ledger = Ledger.in_folder(tmp_path)
    ledger.daemon_stopped()
    ledger.close()
    assert "daemon    stopped at" in CliRunner().invoke(cli, ["status", str(tmp_path)]).output


def test_status_without_a_ledger(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["status", str(tmp_path)])
    assert result.exit_code == 2
    assert "no image2-watch.sqlite here" in result.output

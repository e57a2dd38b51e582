"""Workers stay warm and share the cores: reference records reused while their file is unchanged,
each of N workers limited to its share of the cores, asdf's manifests read with libyaml."""

from __future__ import annotations

import os

import numpy as np
import yaml

from image2.core.parallel import CORES_VARIABLE, usable_cores
from image2.io.refs.readers import read_reference, references_kept
from image2.run.executors import process_pool
from image2.synthetic import references as rf


def test_a_reference_is_read_once_while_its_file_is_unchanged(tmp_path):
    path = rf.make_flat(tmp_path / "flat.fits", shape=(32, 40))
    first = read_reference("flat", path)
    assert read_reference("FLAT", path) is first
    assert read_reference("flat", path, "crds://other.fits") is not first  # another R_* value, another record
    rf.make_flat(path, shape=(32, 40), value=2.0)  # rewritten in place: new content, size unchanged
    os.utime(path, ns=(1, 1))
    again = read_reference("flat", path)
    assert again is not first and not np.array_equal(again.sci, first.sci, equal_nan=True)


def test_a_run_of_one_input_keeps_no_reference_record_for_later(tmp_path):
    path = rf.make_flat(tmp_path / "flat.fits", shape=(32, 40))
    with references_kept(False):
        first = read_reference("flat", path)
        assert read_reference("flat", path) is not first
    kept = read_reference("flat", path)
    assert read_reference("flat", path) is kept  # the default again after the block


def test_the_cores_variable_caps_the_cores_a_process_uses(monkeypatch):
    monkeypatch.delenv(CORES_VARIABLE, raising=False)
    cores = usable_cores()
    monkeypatch.setenv(CORES_VARIABLE, "1")
    assert usable_cores() == 1
    monkeypatch.setenv(CORES_VARIABLE, "0")
    assert usable_cores() == cores
    monkeypatch.setenv(CORES_VARIABLE, "many")
    assert usable_cores() == cores


def manifests_loader() -> str:
    """In a worker: which function asdf parses its extension manifests with."""
    from asdf.extension import _manifest

    return _manifest.yaml.safe_load.__name__


def test_each_worker_gets_its_share_of_the_cores_and_libyaml(monkeypatch):
    monkeypatch.delenv(CORES_VARIABLE, raising=False)
    workers = 2
    with process_pool(workers) as pool:
        shares = {pool.submit(usable_cores).result() for _ in range(4)}
        loader = pool.submit(manifests_loader).result()
    assert shares == {max(1, usable_cores() // workers)}
    assert loader == ("_safe_load_with_libyaml" if yaml.__with_libyaml__ else "safe_load")

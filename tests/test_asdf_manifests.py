"""asdf_manifests: libyaml parses every registered asdf manifest into the same objects as PyYAML does."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from image2.io.asdf_manifests import use_libyaml_for_manifests

pytestmark = pytest.mark.skipif(not getattr(yaml, "__with_libyaml__", False), reason="PyYAML built without libyaml")


def test_every_registered_manifest_loads_the_same():
    from asdf.config import get_config

    manager = get_config().resource_manager
    manifests = [uri for uri in manager if "/manifests/" in uri]
    assert len(manifests) > 10
    for uri in manifests:
        assert yaml.load(manager[uri], Loader=yaml.CSafeLoader) == yaml.safe_load(manager[uri]), uri


def test_asdf_then_has_the_same_extensions_and_round_trips(tmp_path):
    script = (
        "import sys, asdf, numpy as np\n"
        "from image2.io.asdf_manifests import use_libyaml_for_manifests\n"
        "if sys.argv[1] == 'libyaml': assert use_libyaml_for_manifests() and use_libyaml_for_manifests()\n"
        "uris = sorted(e.extension_uri or '' for e in asdf.get_config().extensions)\n"
        "path = sys.argv[2] + '/' + sys.argv[1] + '.asdf'\n"
        "asdf.AsdfFile({'a': np.arange(3.0), 'q': __import__('astropy.units', fromlist=['m']).m * 2}).write_to(path)\n"
        "with asdf.open(path) as f: print(uris, f.tree['a'].tolist(), str(f.tree['q']))\n"
    )
    outputs = [subprocess.run([sys.executable, "-c", script, mode, str(tmp_path)], capture_output=True, text=True,
                              check=True).stdout for mode in ("pyyaml", "libyaml")]
    assert outputs[0] == outputs[1] and "2.0 m" in outputs[0]


def test_calling_it_twice_keeps_one_loader():
    assert use_libyaml_for_manifests() and use_libyaml_for_manifests()
    from asdf.extension import _manifest

    assert _manifest.yaml.safe_load("a: 1") == {"a": 1}

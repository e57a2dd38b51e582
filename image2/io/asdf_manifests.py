"""Parse asdf's extension manifests with libyaml: the same manifests, a fraction of asdf's first-use time.

asdf reads every registered extension manifest (about 50) with PyYAML's pure-Python
``safe_load`` the first time any file is opened or written; with libyaml's ``CSafeLoader``
(the same constructor, a C scanner and parser) that first use costs a third to a quarter as
much. The manifests are plain YAML mappings, so both loaders build equal objects (tested).
"""

from __future__ import annotations

import types
from typing import Any

import yaml


def _safe_load_with_libyaml(stream: Any) -> Any:
    return yaml.load(stream, Loader=yaml.CSafeLoader)  # noqa: S506 - CSafeLoader is the safe loader


def use_libyaml_for_manifests() -> bool:
    """Make asdf parse extension manifests with ``CSafeLoader``; True when it does (libyaml present).

    Call before asdf's first use (later calls change nothing already loaded). Idempotent.
    """
    if not getattr(yaml, "__with_libyaml__", False):
        return False
    from asdf.extension import _manifest

    if getattr(_manifest.yaml, "safe_load", None) is not _safe_load_with_libyaml:
        _manifest.yaml = types.SimpleNamespace(safe_load=_safe_load_with_libyaml)
    return True

"""The public API: lazy at run time, visible to type checkers, in step with the step registry."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import image2
from image2.core.steps import STEPS, public_functions
from image2.errors import Image2Error, InvalidInputError, MissingReferenceError, ReferenceFileError, StepError

INIT = Path(image2.__file__)


def _type_checking_imports() -> dict[str, str]:
    """Return {name: module} of the imports under ``if TYPE_CHECKING:`` in image2/__init__.py."""
    tree = ast.parse(INIT.read_text())
    block = next(node for node in tree.body if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING")
    found = {}
    for node in block.body:
        assert isinstance(node, ast.ImportFrom)
        for alias in node.names:
            assert alias.asname == alias.name, f"{alias.name}: re-export it as itself for type checkers"
            found[alias.name] = node.module
    return found


def test_type_checkers_see_every_public_name_where_it_lives():
    imports = _type_checking_imports()
    assert set(imports) == set(image2.__all__) - {"__version__"}
    for name, module in imports.items():
        assert getattr(image2, name) is getattr(importlib.import_module(module), name), name


def test_the_step_registry_names_the_step_functions_image2_exports():
    for name, module in public_functions().items():
        assert name in image2.__all__, f"add {name} to image2.__all__ and its TYPE_CHECKING imports"
        assert getattr(image2, name) is getattr(importlib.import_module(module), name)
    assert {declared.function for declared in STEPS} <= {getattr(image2, name) for name in image2.__all__[1:]}


def test_unknown_names_raise_attribute_error():
    with pytest.raises(AttributeError):
        image2.no_such_name  # noqa: B018
    assert dir(image2) == sorted(image2.__all__)


def test_import_image2_stays_light():
    code = ("import sys, image2; heavy = [m for m in ('numpy', 'attrs', 'astropy', 'image2.core') if m in sys.modules];"
            " print(heavy)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            cwd=INIT.parents[1])
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize("error", [InvalidInputError("x", "p"), ReferenceFileError("x", "p"),
                                   MissingReferenceError("x", ("flat",)), StepError("flat_field", "p")])
def test_data_errors_are_value_errors_and_image2_errors(error):
    assert isinstance(error, ValueError) and isinstance(error, Image2Error)

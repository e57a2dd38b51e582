"""Parity fixtures: the jwst environment's python, or a visible skip when it is not configured."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.parity import liger_harness
from tests.parity.jwst_harness import jwst_python as configured_python
from tests.parity.jwst_harness import skip_reason

HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test under tests/parity with the ``parity`` marker."""
    for item in items:
        if HERE in Path(item.path).parents:
            item.add_marker(pytest.mark.parity)


@pytest.fixture(scope="session")
def jwst_python() -> str:
    """The python of the jwst 3.0.0 environment (IMAGE2_JWST_PYTHON); skips the test when unset."""
    python = configured_python()
    if python is None:
        pytest.skip(skip_reason())
    if not Path(python).is_file():
        pytest.fail(f"IMAGE2_JWST_PYTHON={python} is not a file")
    return python


@pytest.fixture(scope="session")
def liger_python() -> str:
    """The python of the liger_iris_pipeline environment (IMAGE2_LIGER_PYTHON); skips the test when unset."""
    python = liger_harness.liger_python()
    if python is None:
        pytest.skip(liger_harness.skip_reason())
    if not Path(python).is_file():
        pytest.fail(f"{liger_harness.ENV_VAR}={python} is not a file")
    return python

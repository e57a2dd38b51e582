#!/usr/bin/env bash
# Build the Liger/IRIS reference environment for the parity tier (test-only, never imported by image2).
# Usage, from the repository root: tests/parity/liger_env.sh [VENDOR_DIR]  (default: ../shared/vendor)
# Creates, in the current directory, .venv-liger (Python 3.12 from pyenv) with the vendor's pinned
# requirements and an editable install of liger_iris_pipeline 3d0ac2e unpacked into .liger-src/;
# tests find it through IMAGE2_LIGER_PYTHON=$PWD/.venv-liger/bin/python.
set -euo pipefail
vendor="${1:-../shared/vendor}"
python312="$(ls -d "$(pyenv root)"/versions/3.12*/bin/python3.12 | sort -V | tail -n 1)"
rm -rf .venv-liger .liger-src
"$python312" -m venv .venv-liger
.venv-liger/bin/python -m pip install --quiet --upgrade pip
.venv-liger/bin/python -m pip install --quiet -r "$vendor/requirements-liger.txt"
mkdir -p .liger-src
tar -xzf "$vendor/liger_iris_pipeline-3d0ac2e.tar.gz" -C .liger-src
src="$(dirname "$(find .liger-src -maxdepth 2 -name pyproject.toml | head -n 1)")"
SETUPTOOLS_SCM_PRETEND_VERSION=0.0.0+3d0ac2e .venv-liger/bin/python -m pip install --quiet --no-deps -e "$src"
.venv-liger/bin/python -c "import liger_iris_pipeline, photutils; print('liger_iris_pipeline', liger_iris_pipeline.__file__)"

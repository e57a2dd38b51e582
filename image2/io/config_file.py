"""Read the TOML step configuration file (``--config``)."""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from pathlib import Path

from image2.core.config import Config, ConfigError, build_config
from image2.errors import InvalidInputError


def load_config(path: Path | None = None, overrides: Sequence[str] = ()) -> Config:
    """Return the configuration from an optional TOML file and ``step.param=value`` overrides."""
    document = {}
    if path is not None:
        try:
            document = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as error:
            raise InvalidInputError(path, f"cannot read configuration ({error})") from None
        except tomllib.TOMLDecodeError as error:
            raise InvalidInputError(path, f"not valid TOML ({error})") from None
        try:
            build_config(document)
        except ConfigError as error:
            raise InvalidInputError(path, str(error)) from None
    return build_config(document, overrides)

"""Step parameters: defaults from the step functions' signatures, a TOML document, overrides.

This replaces the reference pipeline's parameter reference files (pars-image2pipeline).
Precedence: built-in defaults < configuration document < command-line overrides.
"""

from __future__ import annotations

import difflib
import inspect
import tomllib
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from image2.core.frozen import frozen_mapping
from image2.core.steps import configured_names, declaration, step_names, variants
from image2.errors import Image2Error


class ConfigError(Image2Error):
    """An unknown step or parameter, or a value of the wrong type."""


def defaults() -> dict[str, dict[str, Any]]:
    """Return every step's parameters with their built-in defaults: ``skip`` first, then the keyword-only
    parameters of the function configuring it (of every family's variant), then the pipeline's extras."""
    table: dict[str, dict[str, Any]] = {}
    for step in step_names():
        table[step] = {"skip": False}
        for declared in variants(step):
            signature = inspect.signature(declared.configured)
            table[step].update({name: signature.parameters[name].default for name in configured_names(declared)})
        table[step].update(declaration(step).extras)
    return table


def _extras(step: str) -> set[str]:
    """The parameters of ``step`` that the pipeline acts on, not its function."""
    return {"skip", *declaration(step).extras}


@attrs.frozen
class Config:
    """The effective parameters of every step."""

    steps: Mapping[str, Mapping[str, Any]] = attrs.field(
        factory=defaults, converter=lambda s: frozen_mapping({k: frozen_mapping(v) for k, v in s.items()}))

    def skipped(self, step: str) -> bool:
        """True when configuration disables ``step``."""
        return bool(self.steps[step]["skip"])

    def parameters(self, step: str) -> dict[str, Any]:
        """Return the keyword arguments for ``step``'s function (no ``skip``, no pipeline extras)."""
        extras = _extras(step)
        return {k: v for k, v in self.steps[step].items() if k not in extras}

    def value(self, step: str, name: str) -> Any:
        """Return one parameter's value."""
        return self.steps[step][name]


def _suggest(word: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1)
    return f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(choices)})"


def _coerce(step: str, name: str, value: Any, default: Any) -> Any:
    """Return ``value`` converted to the type of ``default`` where that is unambiguous."""
    if default is None or value is None:
        return value
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
    elif isinstance(default, float) and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    elif isinstance(default, int) and isinstance(value, int) and not isinstance(value, bool):
        return value
    elif isinstance(default, str) and isinstance(value, str):
        return value
    elif isinstance(default, tuple) and isinstance(value, (list, tuple)):
        return tuple(value)
    elif not isinstance(default, (bool, int, float, str)):
        return value
    raise ConfigError(f"{step}.{name} = {value!r}: expected a {type(default).__name__}")


def _set(table: dict[str, dict[str, Any]], base: Mapping[str, Mapping[str, Any]], step: str, name: str,
         value: Any) -> None:
    if step not in table:
        raise ConfigError(f"unknown step {step!r}{_suggest(step, list(table))}")
    if name not in table[step]:
        raise ConfigError(f"unknown parameter {step}.{name}{_suggest(name, list(table[step]))}")
    table[step][name] = _coerce(step, name, value, base[step][name])


def parse_value(text: str) -> Any:
    """Parse a command-line value as TOML (numbers, booleans, lists, quoted strings), else as a bare string."""
    stripped = text.strip()
    if stripped.lower() in ("none", "null"):
        return None
    try:
        return tomllib.loads(f"v = {stripped}")["v"]
    except tomllib.TOMLDecodeError:
        return stripped


def build_config(document: Mapping[str, Any] | None = None, overrides: Sequence[str] = ()) -> Config:
    """Return the configuration from a parsed TOML ``document`` and ``step.param=value`` overrides.

    The document holds ``[steps.<step>]`` tables (``[<step>]`` is accepted too) and an optional
    top-level ``save_bsub``, which turns on saving the background-subtracted product.
    """
    base = defaults()
    table = {step: dict(params) for step, params in base.items()}
    document = dict(document or {})
    if "save_bsub" in document:
        _set(table, base, "bkg_subtract", "save_results", document.pop("save_bsub"))
    steps = document.pop("steps", {})
    for key in list(document):
        if isinstance(document[key], dict):
            steps.setdefault(key, {}).update(document.pop(key))
    if document:
        raise ConfigError(f"unknown top-level setting {next(iter(document))!r} (known: steps, save_bsub)")
    for step, params in steps.items():
        if not isinstance(params, dict):
            raise ConfigError(f"steps.{step} must be a table of parameters")
        for name, value in params.items():
            _set(table, base, step, name, value)
    for text in overrides:
        key, sep, value = text.partition("=")
        step, dot, name = key.strip().partition(".")
        if not sep or not dot:
            raise ConfigError(f"--step {text!r}: expected STEP.PARAM=VALUE, e.g. resample.pixfrac=0.8")
        _set(table, base, step, name, parse_value(value))
    return Config(table)


def to_toml(config: Config) -> str:
    """Return ``config`` as a TOML document; parameters whose value is None are shown commented."""
    lines = []
    for step, params in config.steps.items():
        lines.append(f"[steps.{step}]")
        for name, value in params.items():
            if value is None:
                lines.append(f"# {name} =   (none)")
            else:
                lines.append(f"{name} = {_toml_value(value)}")
        lines.append("")
    return "\n".join(lines)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return repr(value)

"""Level-2 association records (formats.md §8): products and their member exposures."""

from __future__ import annotations

from pathlib import Path

import attrs

SINGLETON = "singleton"


@attrs.frozen
class Member:
    """One member exposure: its resolved path and lower-cased role (science, background, ...)."""

    path: Path
    exptype: str = attrs.field(converter=str.lower)


@attrs.frozen
class Product:
    """One independent exposure to calibrate, with its background members."""

    name: str
    members: tuple[Member, ...] = attrs.field(converter=tuple)

    @property
    def science(self) -> tuple[Member, ...]:
        """The science members (exactly one is expected)."""
        return tuple(m for m in self.members if m.exptype == "science")

    @property
    def background(self) -> tuple[Member, ...]:
        """The background members, in association order."""
        return tuple(m for m in self.members if m.exptype == "background")


@attrs.frozen
class Association:
    """A Level-2 association; a bare FITS file is a singleton association of one product."""

    products: tuple[Product, ...] = attrs.field(converter=tuple)
    asn_type: str = "user_built"
    asn_rule: str | None = None
    asn_pool: str = "none"
    asn_id: str = "a3001"
    path: Path | None = None

    @property
    def table_name(self) -> str:
        """The ASNTABLE value: the association file's name, or ``singleton`` for bare files."""
        return self.path.name if self.path is not None else SINGLETON

    @property
    def is_singleton(self) -> bool:
        """True when the association was made from a bare exposure file."""
        return self.path is None

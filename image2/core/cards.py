"""Immutable FITS-like header cards, so core records can carry headers without astropy.io."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import attrs

COMMENTARY = frozenset({"COMMENT", "HISTORY", ""})


@attrs.frozen
class Card:
    """One header card: keyword (upper case), value and comment."""

    keyword: str = attrs.field(converter=str.upper)
    value: Any
    comment: str = ""


def _to_cards(items: Iterable[Card | tuple]) -> tuple[Card, ...]:
    return tuple(item if isinstance(item, Card) else Card(*item) for item in items)


@attrs.frozen
class Cards:
    """An ordered, immutable sequence of cards; updates return new instances.

    Commentary cards (COMMENT, HISTORY, blank) may repeat; any other keyword appears once.
    """

    items: tuple[Card, ...] = attrs.field(default=(), converter=_to_cards)

    def __iter__(self) -> Iterator[Card]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def __contains__(self, keyword: object) -> bool:
        return isinstance(keyword, str) and any(c.keyword == keyword.upper() for c in self.items)

    def get(self, keyword: str, default: Any = None) -> Any:
        """Return the value of ``keyword``, or ``default`` when it is absent."""
        key = keyword.upper()
        for card in self.items:
            if card.keyword == key:
                return card.value
        return default

    def card(self, keyword: str) -> Card | None:
        """Return the card of ``keyword``, or None."""
        key = keyword.upper()
        return next((c for c in self.items if c.keyword == key), None)

    def keywords(self) -> list[str]:
        """Return the keywords in order (commentary ones included, repeated)."""
        return [c.keyword for c in self.items]

    def updated(self, values: Mapping[str, Any] | Iterable[tuple], **comments: str) -> Cards:
        """Return a copy with ``values`` set: existing cards keep place and comment, new ones go last.

        ``values`` is a mapping keyword → value or an iterable of ``(keyword, value[, comment])``.
        A value of None removes the keyword.
        """
        rows = values.items() if isinstance(values, Mapping) else values
        items = list(self.items)
        for row in rows:
            keyword, value = row[0].upper(), row[1]
            comment = row[2] if len(row) > 2 else comments.get(keyword)
            index = next((i for i, c in enumerate(items) if c.keyword == keyword), None)
            if value is None:
                if index is not None:
                    del items[index]
            elif index is None or keyword in COMMENTARY:
                items.append(Card(keyword, value, comment or ""))
            else:
                old = items[index]
                items[index] = Card(keyword, value, old.comment if comment is None else comment)
        return Cards(tuple(items))

    def without(self, keywords: Iterable[str]) -> Cards:
        """Return a copy without any card whose keyword is in ``keywords``."""
        drop = {k.upper() for k in keywords}
        return Cards(tuple(c for c in self.items if c.keyword not in drop))

    def without_matching(self, predicate) -> Cards:
        """Return a copy without the cards whose keyword satisfies ``predicate``."""
        return Cards(tuple(c for c in self.items if not predicate(c.keyword)))

"""When a file that landed in a watched folder is complete enough to take.

Events are only hints. A file is taken when it is whole: a close-after-write (or a rename to
its final name) was seen and it has what every finished rate/rateints product has (the science
extension, SCI or DATA, with ERR and DQ, and the ASDF extension written last: a writer that
appends one HDU at a time closes the file between HDUs) and it validates, or else its size and
mtime stayed unchanged over the settle interval and it validates. A file that is still invalid after
settling is judged corrupt. Temporary names (dotfiles, ``*.part``, ``*.tmp``, rsync's
``.name.XXXXXX``) are never taken; the rename to the final name makes the file a candidate.
"""

from __future__ import annotations

import fnmatch
import heapq
import time
from collections.abc import Callable
from pathlib import Path

import attrs

from image2.io.association import is_fits_name
from image2.errors import InvalidInputError
from image2.io.bounds import check_fits
from image2.watch.identity import FileStat, stat_of
from image2.watch.ledger import ASSOCIATION, EXPOSURE

DEFAULT_PATTERNS = ("*_rate.fits", "*_rateints.fits", "*_Liger_*_SCI_LVL1_*.fits", "*_IRIS_*_SCI_LVL1_*.fits",
                    "*_asn.json")
"""What ``image2 watch`` takes when no ``--pattern`` is given: JWST rate files, Liger/IRIS level-1
science frames (named as the Liger pipeline's datamodels name them; SKY frames come through
associations) and associations."""

TEMPORARY_SUFFIXES = (".part", ".partial", ".tmp", ".filepart")

SCIENCE_EXTENSIONS = ("SCI", "DATA")
"""The science array's extension: SCI (JWST), DATA (Liger/IRIS)."""

COMPANION_EXTENSIONS = ("ERR", "DQ")
"""Extensions every finished product has beside its science array."""

ASDF_EXTNAME = "ASDF"
"""The extension a writer appends last (``image2.io.asdf_tree.EXTNAME``; spelled here so that the
command line's import of this module stays free of astropy)."""


def is_temporary_name(name: str) -> bool:
    """True for names writers use before the final rename: dotfiles and partial/temporary suffixes."""
    return name.startswith(".") or name.lower().endswith(TEMPORARY_SUFFIXES)


def kind_of(path: Path) -> str:
    """Return ``exposure`` for FITS names, ``association`` for anything else (JSON, YAML)."""
    return EXPOSURE if is_fits_name(path) else ASSOCIATION


@attrs.frozen
class Selector:
    """Which file names in the watched folders are inputs, and which folders are never looked into."""

    patterns: tuple[str, ...] = DEFAULT_PATTERNS
    excluded: tuple[Path, ...] = ()

    def wants(self, path: Path) -> bool:
        """True when ``path`` (absolute) names an input: a pattern matches and it is no temporary name."""
        name = path.name
        if is_temporary_name(name) or not any(fnmatch.fnmatch(name, p) for p in self.patterns):
            return False
        return not self.is_excluded(path.parent)

    def is_excluded(self, folder: Path) -> bool:
        """True when ``folder`` is, or lies in, an excluded folder (the output or quarantine folder)."""
        return any(folder == e or folder.is_relative_to(e) for e in self.excluded)


def fits_problem(path: Path, finished: bool = False) -> str | None:
    """Return why ``path`` is not a whole FITS file within the limits of image2.io.bounds, or None when
    every HDU's header and data are there; with ``finished``, also why it is not yet a finished product
    (see :func:`unfinished`).

    Reads only the headers, so it costs a few kilobytes whatever the file's size (or declares).
    """
    try:
        names = check_fits(path)
    except InvalidInputError as error:
        return error.problem
    return unfinished(names) if finished else None


def unfinished(names: list[str]) -> str | None:
    """Return what a FITS file with HDUs ``names`` lacks of a finished rate/rateints product (the science
    extension, ERR, DQ, and the ASDF extension last), or None when it has it all."""
    missing = [] if any(n in names for n in SCIENCE_EXTENSIONS) else [" or ".join(SCIENCE_EXTENSIONS)]
    missing += [n for n in COMPANION_EXTENSIONS if n not in names]
    if not names or names[-1] != ASDF_EXTNAME:
        missing.append(f"{ASDF_EXTNAME} as its last extension")
    return f"incomplete: no {', '.join(missing)} yet" if missing else None


WAITING, READY, INVALID, GONE = "waiting", "ready", "invalid", "gone"


@attrs.frozen
class Verdict:
    """What ``Readiness.evaluate`` found: waiting, ready (with the stat taken), invalid (with why), or gone."""

    kind: str
    stat: FileStat | None = None
    problem: str | None = None


def _times_only(before: FileStat, after: FileStat) -> bool:
    """True when only the mtime changed (``cp -p`` and rsync set an old one after closing the file)."""
    return (before.size, before.inode) == (after.size, after.inode)


@attrs.define
class _Tracked:
    stat: FileStat
    since: float
    closed: bool
    due: float


class Readiness:
    """Track candidate files until each is complete (or judged invalid, or gone).

    ``check(path, settled)`` returns None when the file is whole and valid, else the problem (before
    it settled, a file may be asked more: to look finished); it may raise OSError when the file cannot
    be read yet, which means wait. The clock is monotonic:
    only changes this tracker saw count, never the file's own mtime (``cp -p`` keeps an old one).
    """

    def __init__(self, settle: float, check: Callable[[Path, bool], str | None],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.settle = settle
        self._check = check
        self._clock = clock
        self._tracked: dict[Path, _Tracked] = {}
        self._heap: list[tuple[float, int, Path]] = []
        self._sequence = 0

    def __len__(self) -> int:
        return len(self._tracked)

    def __contains__(self, path: object) -> bool:
        return path in self._tracked

    def _schedule(self, path: Path, due: float) -> None:
        self._tracked[path].due = due
        self._sequence += 1
        heapq.heappush(self._heap, (due, self._sequence, path))

    def note(self, path: Path, closed: bool = False) -> None:
        """Take a hint about ``path`` (an event or a scan); ``closed`` says a writer closed it or renamed
        it to this name. A changed size or mtime restarts the settle interval."""
        stat = stat_of(path)
        now = self._clock()
        if stat is None:
            self.forget(path)
            return
        tracked = self._tracked.get(path)
        if tracked is not None and tracked.closed and _times_only(tracked.stat, stat):
            tracked.stat = stat
            self._schedule(path, now)
        elif tracked is None or tracked.stat != stat:
            self._tracked[path] = _Tracked(stat, now, closed, now)
            self._schedule(path, now if closed else now + self.settle)
        elif closed and not tracked.closed:
            tracked.closed = True
            self._schedule(path, now)

    def forget(self, path: Path) -> None:
        """Stop tracking ``path``."""
        self._tracked.pop(path, None)

    def next_due(self) -> float | None:
        """Return the clock time at which the next tracked file should be looked at."""
        while self._heap:
            due, _, path = self._heap[0]
            tracked = self._tracked.get(path)
            if tracked is not None and tracked.due == due:
                return due
            heapq.heappop(self._heap)
        return None

    def due(self) -> list[Path]:
        """Return (and unschedule) the tracked files whose time to be looked at has come."""
        now = self._clock()
        found = []
        while self._heap and self._heap[0][0] <= now:
            due, _, path = heapq.heappop(self._heap)
            tracked = self._tracked.get(path)
            if tracked is not None and tracked.due == due:
                tracked.due = float("inf")
                found.append(path)
        return found

    def evaluate(self, path: Path) -> Verdict:
        """Look at ``path`` now: ready and invalid files stop being tracked, waiting ones are rescheduled."""
        if path not in self._tracked:
            self.note(path)
            if path not in self._tracked:
                return Verdict(GONE)
        tracked = self._tracked[path]
        now = self._clock()
        stat = stat_of(path)
        if stat is None:
            self.forget(path)
            return Verdict(GONE)
        if stat != tracked.stat:
            self._tracked[path] = _Tracked(stat, now, False, now)
            self._schedule(path, now + self.settle)
            return Verdict(WAITING, stat)
        settled = now - tracked.since >= self.settle
        if not (tracked.closed or settled):
            self._schedule(path, tracked.since + self.settle)
            return Verdict(WAITING, stat)
        try:
            problem = self._check(path, settled)
        except OSError as error:
            self._schedule(path, now + self.settle)
            return Verdict(WAITING, stat, f"cannot read it yet ({error})")
        if stat_of(path) != stat:
            self.note(path)
            return Verdict(WAITING, stat)
        if problem is None:
            self.forget(path)
            return Verdict(READY, stat)
        if settled:
            self.forget(path)
            return Verdict(INVALID, stat, problem)
        tracked.closed = False
        self._schedule(path, tracked.since + self.settle)
        return Verdict(WAITING, stat, problem)

"""Stage the products of one calibrated exposure and publish them together: each file whole, the cal last."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING

from image2.core.exposure import Exposure
from image2.core.meta import Meta
from image2.core.naming import product_filename
from image2.core.pipeline import Products
from image2.core.steps import products as product_kinds
from image2.io.atomic import Staging
from image2.io.fits import exposure_hdus
from image2.io.fits_blocks import primary_values, quoted_string
from image2.io.i2d import i2d_hdus
from image2.io.preview import preview_of

if TYPE_CHECKING:
    from astropy.io import fits


def stage_exposure(staging: Staging, exposure: Exposure, path: Path, overwrite: bool | None = None) -> None:
    """Stage ``exposure`` as a FITS file to be published at ``path``."""
    hdul = exposure_hdus(exposure, path.name)
    with staging.open(path, overwrite) as handle:
        hdul.writeto(handle)


class SettledCal:
    """Stages the cal record on a thread as soon as the pipeline says it is settled (core's
    ``calibrate(settled=...)``), while resample computes the i2d: the two overlap, and the cal is
    still published last. A context manager: leaving it waits for the thread, so nothing is staged
    after a failed calibration has discarded the staging."""

    def __init__(self, staging: Staging, path: Path) -> None:
        self._staging, self._path = staging, path
        self._record: Exposure | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def stage(self, cal: Exposure) -> None:
        """Start staging ``cal`` (called by the pipeline, once).

        The HDUs are built here, in the calibrating thread: astropy builds tables under
        ``warnings.catch_warnings``, which is process-wide and would race with resample's own
        use of it. The thread only writes bytes and waits for the disk.
        """
        self._record = cal
        hdul = exposure_hdus(cal, self._path.name)
        self._thread = threading.Thread(target=self._write, args=(hdul,), name="stage-cal", daemon=True)
        self._thread.start()

    def _write(self, hdul: fits.HDUList) -> None:
        try:
            with self._staging.open(self._path, last=True) as handle:
                hdul.writeto(handle)
        except BaseException as error:  # re-raised by finished(), in the calibrating thread
            self._error = error

    def _wait(self) -> None:
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def finished(self, cal: Exposure) -> bool:
        """Wait for the staging; True when it staged ``cal`` itself, False when the caller must stage
        ``cal`` (nothing was staged early, or a later step changed the record: the early file is withdrawn)."""
        self._wait()
        if self._error is not None:
            raise self._error
        if self._record is None:
            return False
        if cal is not self._record:
            self._staging.withdraw_last()
            return False
        return True

    def __enter__(self) -> SettledCal:
        return self

    def __exit__(self, *exc: object) -> None:
        self._wait()


def stage_products(staging: Staging, products: Products, output_dir: Path, root: str, *,
                   save_combined_background: bool = False, preview: str | None = None,
                   replace_companions: bool = False, cal_staged: bool = False) -> None:
    """Stage every file of ``products`` under ``output_dir``: background, bsub, i2d, preview, cal
    (unless ``cal_staged``: a :class:`SettledCal` staged it).

    ``preview``: the quick-look's orientation (see image2.io.preview.ORIENTATIONS), or None for none.

    ``replace_companions`` lets the files other than the cal replace existing ones: the runner
    sets it when no cal exists, since companions without their cal are leftovers of an
    interrupted run (the cal is always published last).
    """
    cube = products.cal.is_cube
    companion = True if replace_companions else None
    if products.background is not None and save_combined_background:
        background = products.background
        stage_exposure(staging, Exposure(sci=background.data, err=background.err, dq=background.dq,
                                         meta=products.cal.meta),
                       output_dir / product_filename(root, "combinedbackground"), companion)
    if products.bsub is not None:
        stage_exposure(staging, products.bsub, output_dir / product_filename(root, "bsub", cube), companion)
    shown, shown_name = products.cal, product_filename(root, "cal", cube)
    if products.i2d is not None:
        i2d_path = output_dir / product_filename(root, "i2d")
        with staging.open(i2d_path, companion) as handle:
            i2d_hdus(products.i2d, i2d_path.name).writeto(handle)
        shown, shown_name = products.i2d, i2d_path.name
    if preview is not None:
        with staging.open(output_dir / (Path(shown_name).stem + ".png"), companion) as handle:
            handle.write(preview_of(shown, shown_name, preview))
    if not cal_staged:
        stage_exposure(staging, products.cal, output_dir / product_filename(root, "cal", cube))


def write_products(products: Products, output_dir: Path | str, root: str, *, overwrite: bool = False,
                   preview: str | None = None, save_combined_background: bool = False) -> list[Path]:
    """Write every product of one exposure atomically and together; return the paths written.

    ``root`` names the files (``<root>_cal.fits``, ``<root>_i2d.fits``, ...). Existing files are
    kept (ProductExistsError) unless ``overwrite``.
    """
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    with Staging(overwrite) as staging:
        stage_products(staging, products, output_dir, root, preview=preview,
                       save_combined_background=save_combined_background)
        return staging.publish()


def destinations(output_dir: Path, root: str, cube: bool) -> tuple[Path, ...]:
    """Return every file a product of ``root`` may be published as, the cal first."""
    names = [product_filename(root, kind.kind, cube) for kind in product_kinds()]
    previews = [Path(name).stem + ".png" for name in names[:1] + [product_filename(root, "i2d")]]
    return tuple(output_dir / name for name in dict.fromkeys(names + previews))


def _left_for(path: Path, meta: Meta) -> bool:
    """True when ``path`` is a product image2 wrote for the exposure of ``meta`` (a leftover of an
    interrupted run, which a new run may replace); a picture is judged by its FITS sibling."""
    if path.suffix == ".png":
        return path.with_suffix(".fits").exists() and _left_for(path.with_suffix(".fits"), meta)
    try:
        values = primary_values(path, ("CAL_VCS", "EXPSTART"))
        writer = quoted_string(values.get("CAL_VCS", "''"))[0]
        start = float(values.get("EXPSTART", "nan"))
    except (OSError, ValueError):
        return False
    return writer.startswith("image2-") and start == meta.exposure.start


def destination_problem(output_dir: Path, root: str, meta: Meta, cube: bool, overwrite: bool) -> str | None:
    """Return why the products of ``root`` must not be published in ``output_dir`` (None when they may).

    Checked before anything is calibrated or published, so a run never leaves some files of a
    product behind: no destination may be a symlink (dangling or not), and without ``overwrite``
    an existing file is replaced only when it is a leftover of image2 for this very exposure,
    without its cal (its cal is published last).
    """
    paths = destinations(output_dir, root, cube)
    for path in paths:
        if path.is_symlink():
            state = "a dangling symlink" if not path.exists() else "a symlink"
            return f"{path} is {state}; products are never written through links"
    if overwrite:
        return None
    strangers = [path for path in paths[1:] if path.exists() and not _left_for(path, meta)]
    if strangers:
        names = ", ".join(path.name for path in strangers)
        return (f"{names} already in {output_dir} without {paths[0].name} (not left by image2 for this exposure); "
                "use --overwrite to replace")
    return None

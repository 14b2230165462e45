"""output_shape refuses an input the layer cannot take (as its forward does), so summary() shows
"?" from that layer on instead of a made-up shape."""
import pytest

from lamina import nn


def test_dense_output_shape_checks_the_feature_count():
    assert nn.Dense(4, 3).output_shape((7, 4)) == (7, 3)
    with pytest.raises(ValueError, match=r"last axis is 4, got shape \(5,\)"):
        nn.Dense(4, 3).output_shape((5,))


def test_conv2d_output_shape_checks_the_channels():
    assert nn.Conv2D(2, 6, 3).output_shape((2, 8, 8)) == (6, 6, 6)
    with pytest.raises(ValueError, match=r"expects 2 input channels, got shape \(3, 8, 8\)"):
        nn.Conv2D(2, 6, 3).output_shape((3, 8, 8))


def test_summary_stops_at_a_mismatched_layer():
    lines = []
    nn.Sequential(nn.Dense(4, 3), nn.Dense(5, 2)).summary((4,), print_fn=lines.append)
    text = "\n".join(lines)
    row = next(line for line in text.splitlines() if line.startswith("1 "))
    assert row.split()[:3] == ["1", "Dense", "?"], text

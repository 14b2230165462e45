"""The accuracy counts of the losses at their boundaries: binary cross-entropy calls a
probability positive when it is above 0.5, for outputs and targets alike (0.5 itself is
negative)."""
import numpy as np

from lamina import losses


def test_bce_accuracy_output_of_exactly_one_half_is_negative():
    out = np.array([0.5, 0.51, 0.49], np.float32)
    assert losses.BinaryCrossEntropy().count_correct(out, np.array([0.0, 1.0, 0.0], np.float32)) == (3, 3)


def test_bce_accuracy_target_of_exactly_one_half_is_negative():
    out = np.array([0.2, 0.3], np.float32)
    assert losses.BinaryCrossEntropy().count_correct(out, np.array([0.5, 0.5], np.float32)) == (2, 2)

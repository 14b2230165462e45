"""lamina.nn: Parameter, layers with explicit forward/backward, and Sequential with fit.

Every layer calls its kernels through its backend (``lamina.backend``); ``model.to(name)``
moves a model's parameters onto a backend and pins it there, ``model.astype(np.float64)``
converts it. ``Batches`` is the minibatch loop shared by fit, evaluate, predict and the workflows.
"""
from .batches import Batches  # noqa: F401
from .layers import (  # noqa: F401
    LAYER_TYPES, AvgPool2D, Conv2D, Dense, Dropout, Flatten, GlobalAvgPool2D, Layer, LeakyReLU, MaxPool2D,
    ReLU, Sigmoid, Softmax, Tanh, register_layer,
)
from .norm import BatchNorm1D, BatchNorm2D  # noqa: F401
from .parameter import Buffer, Parameter  # noqa: F401
from .recurrent import GRU, LSTM, RNN  # noqa: F401
from .sequential import History, NonFiniteLossError, Sequential  # noqa: F401

__all__ = [
    "Parameter", "Layer", "Dense", "Conv2D", "MaxPool2D", "AvgPool2D", "Flatten", "ReLU", "LeakyReLU",
    "Sigmoid", "Tanh", "Softmax", "Dropout", "RNN", "LSTM", "GRU", "BatchNorm1D", "BatchNorm2D",
    "GlobalAvgPool2D", "Buffer",
    "Sequential", "History", "NonFiniteLossError", "register_layer", "LAYER_TYPES", "Batches",
]

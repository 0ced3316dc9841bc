"""Built-in data and models for demos, tests and benchmarks."""

from .mnist1d import MNIST1DConvNet, load_mnist1d

__all__ = ["MNIST1DConvNet", "load_mnist1d"]

"""Blocked pairwise kernels and the greedy solvers built on them. None forms an n x n matrix."""

from .device import default_device, resolve_device
from .facility_location import facility_gains, facility_location, facility_location_batch, facility_objective
from .greedy import gaussian_herding, herding, kcenter_greedy
from .pairwise import FeatureKernel, GradientKernel

__all__ = ["FeatureKernel", "GradientKernel", "default_device", "facility_gains", "facility_location", "facility_location_batch", "facility_objective", "gaussian_herding", "herding",
           "kcenter_greedy", "resolve_device"]

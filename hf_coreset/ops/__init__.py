"""Blocked pairwise kernels and the greedy solvers built on them. An n x n matrix is kept only under a fixed
size (facility location's float32 similarity up to 16,384 rows, the herding greedies' float64 kernel up to 4,096
rows), where reading it beats recomputing it; above, every product works on blocks."""

from .device import default_device, resolve_device
from .facility_location import facility_gains, facility_location, facility_location_batch, facility_objective
from .greedy import gaussian_herding, herding, kcenter_greedy
from .clustering import kmeans, nearest_rows
from .pairwise import FeatureKernel, GradientKernel

__all__ = ["FeatureKernel", "GradientKernel", "default_device", "facility_gains", "facility_location", "facility_location_batch", "facility_objective", "gaussian_herding", "herding",
           "kcenter_greedy", "kmeans", "nearest_rows", "resolve_device"]

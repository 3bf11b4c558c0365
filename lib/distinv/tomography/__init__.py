"""CT for chapter 02: parallel-beam geometry, sparse projector, view splits, FBP, norm, cone beam (GPU).

>>> from distinv.tomography import ParallelBeamGeometry, ParallelBeamProjector
>>> ParallelBeamProjector(ParallelBeamGeometry(size=16, views=4)).measurement_size
(4, 24)
"""

from distinv.tomography.cone_beam import (ConeBeamGeometry, adjoint_mismatch, circular_cone_vectors,
                                          cone_beam_factory)
from distinv.tomography.fbp import FILTERS, filtered_back_projection, ramp_filter
from distinv.tomography.geometry import ParallelBeamGeometry
from distinv.tomography.norm import parallel_beam_sqnorm
from distinv.tomography.projector import ParallelBeamProjector, projection_matrix
from distinv.tomography.split import SPLIT_MODES, angle_physics_factory, view_groups

__all__ = [
    "ParallelBeamGeometry", "ParallelBeamProjector", "projection_matrix", "view_groups", "angle_physics_factory",
    "SPLIT_MODES", "filtered_back_projection", "ramp_filter", "FILTERS", "parallel_beam_sqnorm",
    "ConeBeamGeometry", "circular_cone_vectors", "cone_beam_factory", "adjoint_mismatch",
]

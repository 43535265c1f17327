"""Shipped geometry estimators (video -> depth, poses, intrinsics, Gaussians).

* ``depth_anything_3`` (:mod:`.da3`): the Depth Anything 3 feed-forward model.
* ``colmap`` (:mod:`.colmap`): classical SfM with pycolmap, CPU only.

Rewards pick one through their ``geometry`` option (see :mod:`.common`).
"""

from worldr1_core import hookimpl


@hookimpl
def worldr1_register_geometry_estimators(register):
    from .colmap import ColmapEstimator
    from .da3 import DepthAnything3Estimator

    register(
        "depth_anything_3",
        DepthAnything3Estimator,
        description="Depth Anything 3: depth, poses, intrinsics, Gaussians in one forward pass",
    )
    register(
        "colmap",
        ColmapEstimator,
        description="pycolmap SfM (CPU): poses + sparse points -> interpolated depth and Gaussians",
    )

"""Rank functions of the CT physics tests (importable, so ranks can start with forkserver)."""

import torch
from deepinv.distributed import DistributedContext, distribute

from distinv.distributed import comm
from distinv.tomography.fbp import filtered_back_projection
from distinv.tomography.geometry import ParallelBeamGeometry
from distinv.tomography.split import angle_physics_factory


def ct_signal(geometry: dict, slices: int, seed: int) -> torch.Tensor:
    """The same float64 volume ``(1, 1, slices, N, N)`` on every rank."""
    n = geometry["size"]
    return torch.randn(1, 1, slices, n, n, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


def angle_split_rank(cases: list[dict]) -> dict:
    """Per case: the stacked physics' AᵀA x, Aᵀ y and, through one all-reduce, Σ_k FBP_k(y_k).

    ``y`` is the list of all groups' measurements ``A_k x``, computed by the distributed physics (gathered).
    """
    rank, world_size = comm.world()
    results = {}
    with DistributedContext(device_mode="cpu") as ctx:
        for case in cases:
            kwargs = {"geometry": case["geometry"], "parts": case["parts"], "mode": case["mode"], "dtype": "float64"}
            physics = distribute(angle_physics_factory, ctx, num_operators=case["parts"],
                                 type_object="linear_physics", factory_kwargs=kwargs, dtype=torch.float64)
            x = ct_signal(case["geometry"], case["slices"], seed=case["seed"])
            y = physics.A(x)  # all groups, gathered on every rank
            normal = physics.A_adjoint_A(x)
            adjoint = physics.A_adjoint([y[k] for k in range(case["parts"])])
            fbp = torch.zeros_like(x)
            for index, operator in zip(physics.local_indexes, physics.local_physics):
                fbp += filtered_back_projection(y[index], operator)
            comm.all_reduce(fbp, site="test.fbp")
            key = (ParallelBeamGeometry.from_dict(case["geometry"]).views, case["parts"], case["mode"])
            results[key] = {"y": [y[k] for k in range(case["parts"])], "normal": normal, "adjoint": adjoint,
                            "fbp": fbp, "local_indexes": list(physics.local_indexes), "world_size": world_size}
    gathered = [None] * world_size
    comm.all_gather_object(gathered, {key: value["local_indexes"] for key, value in results.items()},
                           site="test.gather")
    for key in results:
        results[key]["owners"] = [owned[key] for owned in gathered]
    return results if rank == 0 else {}

# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Distributed basics: splitting the operator and the prior
#
# Large imaging inverse problems recover an image $x$ from measurements
#
# $$
# y_k = A_k x + \varepsilon_k, \qquad k = 1, \dots, K,
# $$ (eq-measurements)
#
# where each $A_k$ is a linear operator (one blur, one group of CT views, one chunk of radio
# visibilities). Stacking them gives $A = [A_1; \dots; A_K]$ and the two quantities every
# first-order solver needs split into sums over operators:
#
# $$
# A^\top A x = \sum_{k=1}^{K} A_k^\top A_k x, \qquad
# \nabla_x \tfrac12 \lVert A x - y \rVert^2 = \sum_{k=1}^{K} A_k^\top (A_k x - y_k).
# $$ (eq-sum)
#
# With $R$ ranks, rank $r$ builds and applies only the operators of its index set $\mathcal{K}_r$
# and one all-reduce sums the partial results: $A^\top y = \sum_{r} \sum_{k \in \mathcal{K}_r}
# A_k^\top y_k$. Nothing is approximated: the distributed result must equal the single-process one
# to floating-point rounding.
#
# The learned prior is split differently, over space. A denoiser $D_\sigma$ is applied to
# overlapping tiles $P_t x$ (tile $t$ extended by an overlap on each side) and the tile outputs are
# put back together,
#
# $$
# D_\sigma(x) \approx \sum_t W_t \, P_t^\top D_\sigma(P_t x),
# $$ (eq-tiles)
#
# with weights $W_t$ that form a partition of unity: deepinv's `DistributedProcessing` crops each
# tile to its core and assigns it (its $W_t$ are indicator functions); tiles are dealt out to ranks.
# Tiling *does* change the result wherever the denoiser's receptive field crosses a tile border, so
# we compare it both with the same tiling run in one process (must be equal) and with the untiled
# denoiser (close, not equal).
#
# This chapter runs both on ranks started from this cell with `distinv.launch`, and compares
# them with single-process references.

# %% tags=["parameters"]
size = 256  # image side (pixels)
n_operators = 4  # K, the number of blur operators
nprocs = 2  # ranks started from this notebook (-1: one per GPU)
device = "cpu"  # "cpu", "cuda" or "auto"
patch_size = 128  # denoiser tile size
overlap = 16  # tile overlap (pixels)
repeats = 3  # timed repetitions (median reported)
timeout = 600  # seconds before the launcher stops hanging ranks

# %%
from myst_nb import glue

import distinv
from distinv.book import setup_plotly
from distinv.equivalence import BasicsConfig, run_basics
from distinv.plots.basics import equality_numbers, equivalence_table, operators_figure, timing_figure

setup_plotly()
nprocs = distinv.resolve_nprocs(nprocs, device)
config = BasicsConfig(size=size, n_operators=n_operators, patch_size=patch_size, overlap=overlap,
                      repeats=repeats)

# %% [markdown]
# ## Running on several ranks from a cell
#
# `distinv.launch(fn, *args, nprocs=R)` starts $R$ local ranks with `torch.distributed`
# initialised (gloo on CPU, NCCL when each rank has its own GPU) and returns rank 0's result.
# `run_basics` is an ordinary function of the library: on every rank it builds the operators
# $A_k$ of that rank from a factory `(index, device, kwargs)`, distributes them with deepinv's
# `distribute`, applies $A$ and $A^\top$, tiles a denoiser over the ranks (the small DRUNet trained
# on scikit-image's pictures that ships with distinv, `distinv.load_denoiser`), and computes the
# single-process references next to them. Under `torchrun` or SLURM the same call runs in place on
# each rank of the job.

# %%
distributed = distinv.launch(run_basics, config, nprocs=nprocs, device=device, timeout=timeout)
single = distinv.launch(run_basics, config, nprocs=1, device=device)

# %% [markdown]
# ## Distributed equals single-process
#
# For each quantity, the table gives the largest absolute difference between the result on
# `nprocs` ranks and its single-process reference, the PSNR of one against the other, and the median
# times (rank 0, after a barrier).

# %%
for name, value in equality_numbers(distributed).items():
    glue(f"basics_{name}", value, display=False)
equivalence_table(distributed)

# %% [markdown]
# On {glue:text}`basics_ranks` ranks the forward operator, its adjoint and the tiled denoiser match their
# single-process references to within {glue:text}`basics_max_abs_diff:.1e`, float32 rounding. The tiled
# denoiser agrees with the untiled one to {glue:text}`basics_tiling_psnr_db:.1f` dB: that gap is the tiling
# itself (cropped overlaps), not the distribution.

# %% [markdown]
# ## What the operators do
#
# The ground truth, the first of the $K$ blurred measurements, the back-projection
# $A^\top y$ computed on the ranks, and the tiled and untiled denoiser outputs, each shown from its
# own minimum (black) to its own maximum (white): $A^\top y$ sums $K$ frames, so its range is not the
# image's.

# %%
operators_figure(distributed["images"]).show()

# %% [markdown]
# ## Where the time goes
#
# Median time of each operation on `nprocs` ranks and in one process. At these small CPU sizes the
# communication (an all-gather of the measurements for $A$, an all-reduce for $A^\top$) is a large
# share of the work; the point of this chapter is equality, and the later chapters measure speed at
# sizes where splitting pays.

# %%
timing_figure(distributed, single, title=f"Time per operation, {size}² image, K = {n_operators}").show()

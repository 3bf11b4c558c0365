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
# # Computed tomography: a volume split over ranks
#
# In the first use case the *image* fitted every rank and the operators were dealt out. In 3D
# tomography the *volume* is the large object: a $512^3$ volume is half a gigabyte in float32, and the
# solver holds several copies of it (iterate, gradient, CG vectors, the prior's activations). This
# chapter splits the volume itself.
#
# A parallel beam crosses the object perpendicular to the rotation axis $z$, from $V$ angles
# $\theta_v = v\pi/V$. Each axial slice $x_z \in \mathbb R^{N\times N}$ then has its own sinogram, and
# with white noise
#
# $$
# y_z = M x_z + \sigma\,\varepsilon_z, \qquad \varepsilon_z \sim \mathcal N(0, I), \qquad
# \sigma = \eta\,\mathrm{RMS}(Mx), \qquad z = 0, \dots, N-1,
# $$ (eq-ct-model)
#
# where $M$ is the projection matrix of one slice (ASTRA's `linear` projector, exported once as a sparse
# matrix and applied to all slices at once) and $\eta$ the relative noise level. Two ways to distribute
# $A = \operatorname{diag}(M, \dots, M)$:
#
# - **view groups** ("angles"): $A = \sum_k A_k$ with $A_k$ the rows of the views of group $k$. Every
#   rank holds the whole volume; $A^\top A x = \sum_k A_k^\top A_k x$ costs one all-reduce of a volume.
# - **z-slabs** ("slabs"): rank $r$ holds the slices $[z_r, z_{r+1})$ of the volume *and* of the
#   sinogram. {eq}`eq-ct-model` is separable in $z$, so the split is exact and needs no communication at
#   all: only conjugate gradients' inner products are all-reduced (one scalar). **No rank ever holds
#   the whole volume**: each rank generates its slab of the phantom, measures it, and denoises it.
#
# The solvers see the normalised operator $A/\lVert A\rVert$ (so one set of settings suits every size),
# with $\lVert A\rVert$ exact: for slice-separable parallel beam it is the norm of one slice's full scan.
# The baseline is filtered back-projection (FBP): $\tfrac{\pi}{V}A^\top(h \ast y)$ with a ramp filter
# $h$; summed over view groups it is the FBP of all views, so ranks compute it with one all-reduce.
#
# The operator is ill-conditioned (its singular values fall like $1/\sqrt{|\omega|}$): plain PnP-PGD with
# step $1/\lVert A\rVert^2$ barely leaves its start point in a few iterations. We use **PnP-HQS**, whose
# data step $(A^\top A + \mu_t I)z = A^\top y + \mu_t x_t$ is solved by conjugate gradients: CG is a
# Krylov method, it reaches the well-determined components in a few steps whatever the conditioning,
# and the prior $D_{\sigma_t}$ fills in the rest:
#
# $$
# z_{t+1} = (A^\top A + \mu_t I)^{-1}(A^\top y + \mu_t x_t), \qquad x_{t+1} = D_{\sigma_t}(z_{t+1}),
# \qquad \mu_t = w\,\sigma^2/\sigma_t^2 .
# $$ (eq-ct-hqs)
#
# The prior is a small DRUNet trained on slices of generated phantoms (seeds disjoint from this
# chapter's phantom), applied slice by slice: on a slab, slices need no halo. The TV baseline
# (2D TV of each slice, ADMM with the same CG step) has its weight tuned on the same phantom.

# %%
import json
from pathlib import Path

from IPython.display import display
from myst_nb import glue

import distinv
from distinv.book import setup_plotly
from distinv.models import shipped_record
from distinv.plots.ct import (
    distribution_table, memory_figure, memory_table, orthogonal_planes_figure, quality_table, sinogram_figure,
    tv_grid_figure,
)
from distinv.plots.images import psnr_figure, run_label, time_breakdown_figure
from distinv.solvers import run_reconstruction

setup_plotly()

# %% tags=["parameters"]
size = 64  # cube side N (voxels)
views = 60  # projection angles over [0, pi)
noise = 0.01  # relative noise level eta (of the sinogram's RMS)
phantom = "textured"  # "textured" or "shepp-logan"
seed = 7  # phantom seed (held out of the CT prior's training)
iterations = 10  # PnP-HQS iterations
cg_iterations = 15  # CG steps per HQS data step
tv_iterations = 40  # ADMM iterations of the TV baseline
nprocs = 2  # ranks (-1: one per GPU)
device = "cpu"  # "cpu", "cuda" or "auto"
weights = "auto"  # the CT prior ("auto": the shipped drunet-small-ct), or "random" (wiring only)
compare_one_rank = True  # also run on 1 rank to compare
results_dir = "../results/ct"  # the benchmark documents (quality grid, memory, projector speed)

# %%
n_ranks = distinv.resolve_nprocs(nprocs, device)
base = dict(problem="ct", size=size, views=views, noise=noise, phantom=phantom, seed=seed, device=device,
            weights=weights, cg_iterations=cg_iterations, progress=True)
results = Path(results_dir)
quality_doc = json.loads((results / "quality_cpu.json").read_text())
tv_weight = quality_doc["targets"]["best_tv_weight"]
runs: dict = {}

# %% [markdown]
# ## Reconstruction on z-slabs
#
# `distinv.launch` starts the ranks from this cell. Each runs `distinv.solvers.run_reconstruction` with
# `problem="ct"`: it generates its slab of the phantom, measures it, computes its slab of FBP and iterates
# {eq}`eq-ct-hqs` on its slab.

# %%
label = f"pnp-hqs, slabs, {n_ranks} rank{'s' if n_ranks > 1 else ''}"
runs[label] = distinv.launch(run_reconstruction, dict(base, solver="pnp-hqs", iterations=iterations,
                                                      distribution="slabs"), nprocs=n_ranks, timeout=3600)
main = runs[label]
planes = main["planes"]
orthogonal_planes_figure({"truth": planes["truth"], "FBP": planes["fbp"],
                          "PnP-HQS": planes["reconstruction"]}).show()

# %% [markdown]
# *Figure 1. Axial, coronal and sagittal planes through the centre of the volume: the phantom, FBP and
# PnP-HQS, on the phantom's grey range. The coronal and sagittal planes cross every rank's slab: they
# were assembled from the ranks' pieces for this figure only.*

# %%
sinogram_figure(main["sinogram"]).show()

# %% [markdown]
# *Figure 2. The noisy sinogram of the central slice, one row per view.*

# %%
final = main["final"]
glue("ct_size", size, display=False)
glue("ct_views", views, display=False)
glue("ct_psnr_pnp", final["psnr"], display=False)
glue("ct_psnr_fbp", final["psnr_fbp"], display=False)
glue("ct_gain_fbp", final["psnr"] - final["psnr_fbp"], display=False)
glue("ct_ssim_pnp", final["ssim"], display=False)
glue("ct_ssim_fbp", final["ssim_fbp"], display=False)

# %% [markdown]
# On the {glue:text}`ct_size`³ phantom seen from {glue:text}`ct_views` views, PnP-HQS reaches
# {glue:text}`ct_psnr_pnp:.2f` dB (SSIM {glue:text}`ct_ssim_pnp:.3f`) against
# {glue:text}`ct_psnr_fbp:.2f` dB for FBP (SSIM {glue:text}`ct_ssim_fbp:.3f`): a gain of
# {glue:text}`ct_gain_fbp:.1f` dB.
#
# ## One rank against several, slabs against angles
#
# Both distributions compute the same operator, so every run must give the same iterates up to float
# rounding. The view-group run holds the whole volume on every rank and all-reduces volumes; the slab
# run holds a slab and all-reduces scalars.

# %%
if compare_one_rank and n_ranks > 1:
    runs["pnp-hqs, slabs, 1 rank"] = distinv.launch(
        run_reconstruction, dict(base, solver="pnp-hqs", iterations=iterations, distribution="slabs"),
        nprocs=1, timeout=3600)
runs[f"pnp-hqs, angles, {n_ranks} rank{'s' if n_ranks > 1 else ''}"] = distinv.launch(
    run_reconstruction, dict(base, solver="pnp-hqs", iterations=iterations, distribution="angles"),
    nprocs=n_ranks, timeout=3600)
runs[f"tv, slabs, {n_ranks} rank{'s' if n_ranks > 1 else ''}"] = distinv.launch(
    run_reconstruction, dict(base, solver="tv", iterations=tv_iterations, tv_weight=tv_weight,
                             distribution="slabs", pinv_iterations=0), nprocs=n_ranks, timeout=3600)
psnr_figure({name: result["history"] for name, result in runs.items()}).show()

# %% [markdown]
# *Figure 3. PSNR of the volume against iteration. The PnP-HQS curves of 1 and several ranks, slabs and
# angles, lie on top of each other; TV (its weight from the tuned grid below) converges more slowly.*

# %%
pnp_runs = {name: result for name, result in runs.items() if name.startswith("pnp")}
gap = max(abs(a["psnr"] - b["psnr"]) for result in pnp_runs.values()
          for a, b in zip(result["history"], main["history"]))
glue("ct_gap", gap, display=False)
display(distribution_table(pnp_runs))

# %% [markdown]
# *Table 1. The PnP-HQS runs: final quality, median seconds per iteration (data step, prior,
# communication), bytes communicated per iteration, and the largest per-rank peak memory above the
# process baseline (what the data and the solver cost, without the imports).*
#
# The largest PSNR difference between any two PnP-HQS runs over all iterations is
# {glue:text}`ct_gap:.1e` dB.

# %%
time_breakdown_figure(pnp_runs).show()

# %% [markdown]
# *Figure 4. The median iteration split into data-step compute, prior compute and communication.*
#
# ## Quality against the baselines
#
# A single run proves little about quality: the benchmark below solves one held-out phantom with FBP,
# CGLS, TV at every weight of a grid and PnP-HQS, in one run (`python -m distinv.bench.studies.ct quality`), and
# stores the result with its provenance. TV's best weight on this grid is the one the run above used.

# %%
targets = quality_doc["targets"]
glue("ct_q_gain_fbp", targets["pnp_minus_fbp_db"], display=False)
glue("ct_q_gap_tv", targets["pnp_minus_best_tv_db"], display=False)
glue("ct_q_tv_weight", targets["best_tv_weight"], display=False)
tv_grid = sorted(row["tv_weight"] for row in quality_doc["rows"] if row["method"] == "tv")
glue("ct_q_tv_where", "at the grid's edge" if targets["best_tv_weight"] in (tv_grid[0], tv_grid[-1])
     else "inside the grid", display=False)
glue("ct_q_size", quality_doc["config"]["size"], display=False)
glue("ct_q_iterations", quality_doc["config"]["iterations"], display=False)
prior_record = shipped_record("drunet-small-ct")
prior_card = {row["sigma"]: row for row in prior_record["validation"]}
prior_runs, training = [], prior_record["training"]
while training is not None:  # a fine-tuned prior's record carries the runs it started from
    prior_runs.append(training)
    training = training.get("init_training")
glue("ct_prior_minutes", sum(run["minutes"] for run in prior_runs), display=False)
glue("ct_prior_runs", len(prior_runs), display=False)
glue("ct_prior_sides", next(item for item in prior_record["data"]["train"] if item.startswith("cube sides")),
     display=False)
glue("ct_prior_sigma_max", prior_runs[0]["sigma_max"], display=False)
glue("ct_prior_sigma_max_first", prior_runs[-1]["sigma_max"], display=False)
glue("ct_q_sigma_last", quality_doc["pnp_history"][-1]["sigma"], display=False)
glue("ct_q_sigma_third_last", quality_doc["pnp_history"][-3]["sigma"], display=False)
glue("ct_prior_low_model", prior_card[0.025]["psnr_model"], display=False)
glue("ct_prior_low_tv", prior_card[0.025]["psnr_tv"], display=False)
glue("ct_prior_high_model", prior_card[0.1]["psnr_model"], display=False)
glue("ct_prior_high_tv", prior_card[0.1]["psnr_tv"], display=False)
tv_grid_figure(quality_doc).show()

# %% [markdown]
# *Figure 5. TV's PSNR against its weight; FBP, CGLS and PnP-HQS as horizontal lines.*
#
# At {glue:text}`ct_q_size`³, PnP-HQS ({glue:text}`ct_q_iterations` iterations) is
# {glue:text}`ct_q_gain_fbp:.1f` dB above FBP. Against TV at its best weight of the grid
# ({glue:text}`ct_q_tv_weight`, {glue:text}`ct_q_tv_where`), the difference is {glue:text}`ct_q_gap_tv:+.1f` dB
# (positive: PnP ahead). The phantom is piecewise smooth with a mild texture, and 60 views leave streaks that TV
# removes well, so the comparison is decided by the prior at low noise: with 1 % noise the last three PnP
# iterations denoise at strengths from {glue:text}`ct_q_sigma_third_last:.3f` down to
# {glue:text}`ct_q_sigma_last:.3f`. The shipped CT denoiser, a small DRUNet fine-tuned on phantom
# slices in {glue:text}`ct_prior_runs` runs ({glue:text}`ct_prior_minutes:.0f` CPU-minutes in all, its model
# card), denoises at $\sigma = 0.025$ to {glue:text}`ct_prior_low_model:.1f` dB against
# {glue:text}`ct_prior_low_tv:.1f` dB for TV at its best weight, and at $\sigma = 0.1$ to
# {glue:text}`ct_prior_high_model:.1f` dB against {glue:text}`ct_prior_high_tv:.1f` dB. Its last run drew slices from
# {glue:text}`ct_prior_sides` (the small cubes have this chapter's thin walls and one-voxel inclusions) and noise
# levels up to {glue:text}`ct_prior_sigma_max` instead of {glue:text}`ct_prior_sigma_max_first`, so more of its
# training is spent where PnP's last iterations work.
# Every row of the benchmark document (folded):

# %% tags=["hide-output"]
display(quality_table(quality_doc))

# %% [markdown]
# ## Memory per rank against volume size
#
# With z-slabs, per-rank memory above the process baseline should fall as $1/P$. The benchmark
# `python -m distinv.bench.studies.ct memory` runs one PnP-HQS iteration per size and rank count and records
# each rank's peak resident memory above its baseline. Each rank first makes a small warm-up run, so the
# baseline holds the imports *and* the library code that the first products and network calls load; the
# heap's free pages are handed back to the system before each measurement.
#
# Three settings decide how much a rank holds beyond its share. The stored projector keeps
# ASTRA's matrix of one slice and its transpose, the same on every rank whatever its slab;
# `projector="matrix-free"` recomputes those weights, a few rays at a time, at every product
# ({mod}`distinv.tomography.joseph`, equal to ASTRA's matrix entry by entry to its float32 rounding). A
# prior that denoises whole slices holds a batch of slices' activations; `patch=64` tiles every slice
# in-plane, one window at a time. And glibc's allocator, once a freed block has raised its mmap threshold,
# serves slab-sized tensors from its heap, where what a rank frees stays resident;
# `map_large_allocations=true` pins that threshold at 4 MiB ({mod}`distinv.allocator`), so every slab is
# mapped on its own and handed back when freed. The documents below were measured with all three.

# %%
memory_parts = [json.loads((results / name).read_text()) for name in ("memory_cpu.json", "memory_384_cpu.json")]
memory_doc = {"rows": [row for part in memory_parts for row in part["rows"]],
              "ratio_to_ideal": {k: v for part in memory_parts for k, v in part["ratio_to_ideal"].items()},
              "ratio_target": memory_parts[0]["ratio_target"]}
memory_figure(memory_doc).show()

# %% [markdown]
# *Figure 6. Peak memory per rank above the process baseline against the number of ranks (log-log),
# with the ideal $1/P$ from one rank (dotted); matrix-free projector, in-plane tiles, large allocations
# mapped.*

# %%
ratios = {key: ratio for key, ratio in memory_doc["ratio_to_ideal"].items() if not key.endswith(":1")}
sizes = sorted({row["size"] for row in memory_doc["rows"]})
glue("ct_mem_sizes", " and ".join(f"{size}³" for size in sizes), display=False)
for size in sizes:
    for ranks in (2, 4):
        glue(f"ct_mem_ratio_{size}_{ranks}", ratios[f"{size}:{ranks}"], display=False)
glue("ct_mem_ratio_worst", max(ratios.values()), display=False)
glue("ct_mem_ratio_best", min(ratios.values()), display=False)
glue("ct_mem_tolerance_pct", 100 * (memory_doc["ratio_target"][1] - 1), display=False)
glue("ct_mem_within", "within" if all(memory_doc["ratio_target"][0] <= r <= memory_doc["ratio_target"][1]
                                       for r in ratios.values()) else "not all within", display=False)
four = {row["size"]: row for row in memory_doc["rows"] if row["nprocs"] == 4}
glue("ct_mem_256_four_mib", four[256]["data_mib"], display=False)
default_doc = json.loads((results / "memory_default_allocator_cpu.json").read_text())
glue("ct_mem_default_four_mib", next(r["data_mib"] for r in default_doc["rows"] if r["nprocs"] == 4), display=False)
glue("ct_mem_default_ratio", default_doc["ratio_to_ideal"]["256:4"], display=False)
costs = json.loads((results / "allocator_costs_cpu.json").read_text())["mapped_over_default"]
glue("ct_alloc_window", costs["drunet_96_s"], display=False)
glue("ct_alloc_slab", costs["slab_updates_s"], display=False)
largest = json.loads((results / "memory_512_cpu.json").read_text())
glue("ct_big_size", largest["rows"][0]["size"], display=False)
glue("ct_big_ranks", largest["rows"][0]["nprocs"], display=False)
glue("ct_big_patch", largest["config"]["patch"], display=False)
glue("ct_big_slab_mib", largest["rows"][0]["size"] ** 3 * 4 / largest["rows"][0]["nprocs"] / 2**20, display=False)
glue("ct_big_peak_gib", largest["rows"][0]["max_peak_gib"], display=False)
glue("ct_big_limit_gib", largest["limit_gib"], display=False)
glue("ct_big_minutes", largest["rows"][0]["wall_seconds"] / 60, display=False)
speed_doc = json.loads((results / "projector_matrix_free_cpu.json").read_text())
stored, free = speed_doc["operators"]["sparse/torch"], speed_doc["operators"]["sparse/matrix-free"]
glue("ct_free_size", speed_doc["geometry"]["size"], display=False)
glue("ct_free_slower_a", free["A_s"] / stored["A_s"], display=False)
glue("ct_free_slower_at", free["A_adjoint_s"] / stored["A_adjoint_s"], display=False)
glue("ct_free_saved_mb", stored["matrices_mb"], display=False)

# %% [markdown]
# At {glue:text}`ct_mem_sizes`, a rank of 2 or 4 holds between {glue:text}`ct_mem_ratio_best:.2f` and
# {glue:text}`ct_mem_ratio_worst:.2f` times its ideal share, {glue:text}`ct_mem_within` our
# {glue:text}`ct_mem_tolerance_pct:.0f` % (256³: {glue:text}`ct_mem_ratio_256_2:.2f` on 2 ranks,
# {glue:text}`ct_mem_ratio_256_4:.2f` on 4; 384³: {glue:text}`ct_mem_ratio_384_2:.2f` and
# {glue:text}`ct_mem_ratio_384_4:.2f`). What does not shrink with $P$ is what every rank holds whatever its
# slab: the network's weights, one window's activations, the weights of a few rays. The allocator mattered
# most at 4 ranks of 256³, whose 16 MiB slabs sit below glibc's raised threshold: with its default policy
# each rank held {glue:text}`ct_mem_default_four_mib:.0f` MiB ({glue:text}`ct_mem_default_ratio:.2f` times its
# share), mapped {glue:text}`ct_mem_256_four_mib:.0f` MiB. None of the three is free: in fresh processes
# (`python -m distinv.bench.allocator`) the network on one 96² window took {glue:text}`ct_alloc_window:.2f`×
# as long with large allocations mapped, and vector updates of a 16 MiB slab {glue:text}`ct_alloc_slab:.2f`×,
# every new large tensor being fresh pages the kernel must fault in; at {glue:text}`ct_free_size`³ the
# matrix-free products are {glue:text}`ct_free_slower_a:.1f`× (A) and {glue:text}`ct_free_slower_at:.1f`× (Aᵀ)
# slower than the stored matrix's, which holds {glue:text}`ct_free_saved_mb:.0f` MB per rank at that size, a
# cost that grows with the slice's area and the views, not with the slab. These are the settings for a volume
# that barely fits; the defaults are the fast ones.
#
# The largest case: one PnP-HQS iteration at {glue:text}`ct_big_size`³ on {glue:text}`ct_big_ranks` CPU ranks,
# matrix-free, with in-plane tiles of {glue:text}`ct_big_patch`² (fewer, larger windows than above: less
# recomputed overlap, so a shorter run; each slab of {glue:text}`ct_big_slab_mib:.0f` MiB is above any mmap
# threshold glibc uses, so the allocator was left alone), peaked at {glue:text}`ct_big_peak_gib:.2f` GiB on
# its largest rank, against our limit of {glue:text}`ct_big_limit_gib:.0f` GiB, in
# {glue:text}`ct_big_minutes:.0f` minutes on this 2-core machine (`memory --sizes 512 --ranks 4 --limit-gib 4`,
# the command in the README).

# %% tags=["hide-output"]
display(memory_table(memory_doc))

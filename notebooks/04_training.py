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
# # Training across ranks: an unrolled network
#
# The chapters so far *solve* inverse problems with a prior trained elsewhere. This one *learns* a
# solver through the distributed physics and the tiled prior of chapter 01: the forward operators are
# dealt over ranks (or the image is cut into slabs), the denoiser runs tile by tile, and the gradient of
# the loss flows back through both.
#
# ## The unrolled model
#
# PnP-HQS (chapter 01) alternates a data step and a denoising step. Unrolling fixes its number of
# iterations to $L$ *layers* and learns what PnP-HQS sets by hand. With the measurements
# $y_k = A_k x + n_k$, $k = 1, \dots, K$, and $A = \sum_k A_k$ stacked over the frames, layer $t$ computes
#
# $$
# z_t = \bigl(A^\top A + \mu_t I\bigr)^{-1}\bigl(A^\top y + \mu_t x_{t-1}\bigr), \qquad
# x_t = D_\theta(z_t, \sigma_t), \qquad \mu_t = w_t\,\frac{\sigma_n^2}{\sigma_t^2},
# $$ (eq-unrolled)
#
# from $x_0 = A^\top y / \lVert A \rVert^2$. The inverse is applied by a fixed number of conjugate-gradient
# steps, and the gradient flows through them. What is learned: the weights $\theta$ of one small DRUNet
# $D_\theta$, shared by every layer (initialised from the shipped grey denoiser), and per layer the noise
# level $\sigma_t$ and the penalty weight $w_t$ (learned as logarithms, so they stay positive; they start
# at PnP-HQS's schedule, so the untrained network *is* PnP-HQS). The loss is the mean over the crops of a
# batch of $10\log_{10}\mathrm{MSE}(x_L, x)$, the negative PSNR.
#
# **Why HQS and not PGD.** A PGD layer is a gradient step $x - \gamma A^\top(Ax - y)$; an HQS layer solves
# its data step with CG. On this deblurring problem the data term costs little next to the denoiser, so an
# HQS layer costs about as much as a PGD layer and gets far more out of it (measured below).
#
# ## One training step on several ranks
#
# Two layouts, the two of chapter 01's prior:
#
# - **replicated**: every rank holds the whole crop; deepinv's `DistributedStackedLinearPhysics` gives each
#   rank its own frames $A_k$ and sums $A^\top A x$ with one all-reduce; distinv's `TiledDenoiser` runs each
#   rank's share of the tiles. Each rank then holds the gradient of *its* tiles' part of the network, and
#   the denoiser's gradients are summed over ranks (one flat all-reduce);
# - **sharded**: each rank holds a slab of rows of the crop and of every measurement; the blur
#   exchanges halos (distinv's `ShardedBlur`), the denoiser sees each slab with its halo. Every parameter's
#   gradient is each rank's share and all of them are summed.
#
# Then every rank holds the same gradients, takes the same Adam step, and the parameters stay equal
# without being broadcast. Both layouts compute the same mathematics as one process: the gradient must
# match to float rounding.

# %%
import json
import tempfile
from pathlib import Path

from IPython.display import display
from myst_nb import glue

import distinv
from distinv.book import setup_plotly
from distinv.plots.images import image_row
from distinv.plots.training import (
    gradient_table, loss_curves_figure, memory_figure, memory_ratios, memory_table, psnr_time_figure, quality_table,
)
from distinv.solvers import run_reconstruction
from distinv.solvers.config import SolverConfig
from distinv.solvers.unrolled import available_unrolled
from distinv.training import train_rank
from distinv.training.equivalence import gradient_agreement, step_gradients_rank

setup_plotly()

# %% tags=["parameters"]
nprocs = 2  # ranks (-1: one per GPU)
device = "cpu"  # "cpu", "cuda" or "auto"
layout = "replicated"  # the live training's layout: "replicated" or "sharded"
live_steps = 40  # steps of the live training
live_crop = 64  # side of its training crops (pixels)
live_layers = 4  # its layers L
live_batch = 4  # crops per step
live_lr = 3e-3  # peak learning rate of its denoiser (cosine to a hundredth)
gradient_crop = 32  # crop side of the float64 gradient comparison
compare_one_rank = True  # also train on 1 rank and compare the loss curves
compare_image = "camera"  # a held-out photo for the image comparison
compare_size = 512  # its side (pixels)
weights = "auto"  # the unrolled network ("auto": the shipped unrolled-hqs-gray)
results_dir = "../results/training"  # the benchmark documents (quality, memory, layer)

# %%
n_ranks = distinv.resolve_nprocs(nprocs, device)
results = Path(results_dir)
quality_doc = json.loads((results / "quality_cpu.json").read_text())
memory_doc = json.loads((results / "memory_cpu.json").read_text())
layer_doc = json.loads((results / "layer_cpu.json").read_text())
glue("tr_ranks", n_ranks, display=False)
glue("tr_layout", layout, display=False)

# %% [markdown]
# ## The gradient on 1 and on several ranks
#
# One training step (forward, loss, backward, gradient all-reduce; no update) in float64, with a tiny
# random DRUNet on {glue:text}`tr_gradient_crop`² crops, tiles of 16 pixels with an 8-pixel overlap, in both
# layouts, on 1 rank and on {glue:text}`tr_ranks`. `distinv.launch` starts the ranks from this cell; the
# rank function is `distinv.training.equivalence.step_gradients_rank`.

# %%
tiny = dict(images=["camera"], image_side=48, crop=gradient_crop, n_layers=2, cg_iterations=3, init="random-tiny",
            patch=16, overlap=8, K=3, blur_sigma=[1.0, 0.5], dtype="float64", progress=False, channels_last=False,
            device="cpu")
layouts = [dict(tiny, layout="replicated"), dict(tiny, layout="sharded")]
one = distinv.launch(step_gradients_rank, layouts, 0, nprocs=1, timeout=600)
several = distinv.launch(step_gradients_rank, layouts, 0, nprocs=max(n_ranks, 2), timeout=600)
agreement = {name: gradient_agreement(one[i], several[i]) for i, name in enumerate(("replicated", "sharded"))}
worst = max(row["relative"] for rows in agreement.values() for row in rows)
glue("tr_gradient_crop", gradient_crop, display=False)
glue("tr_gradient_ranks", max(n_ranks, 2), display=False)
glue("tr_gradient_worst", worst, display=False)
glue("tr_gradient_tensors", len(agreement["sharded"]) - 1, display=False)
glue("tr_gradient_spread", max(entry["spread"] for entry in several), display=False)
display(gradient_table(agreement[layout]))

# %% [markdown]
# *Table 1. One training step in the {glue:text}`tr_layout` layout, 1 rank against
# {glue:text}`tr_gradient_ranks`: the loss and the gradients of the {glue:text}`tr_gradient_tensors` parameter
# tensors, by group (largest entry of the gradient, largest difference relative to it).*
#
# Over both layouts and every tensor the largest relative difference is {glue:text}`tr_gradient_worst:.1e`,
# float64 rounding: the distributed step computes the gradient of one process. After the all-reduce the ranks'
# gradients differ by at most {glue:text}`tr_gradient_spread:.1e` (they are the same numbers). The test suite
# checks the same on 2 and 3 ranks, with and without checkpointing, for both losses. Every tensor (folded):

# %% tags=["hide-output"]
display(gradient_table(agreement[layout], per_parameter=True))

# %% [markdown]
# ## A short training, live
#
# {glue:text}`tr_live_steps` steps on {glue:text}`tr_ranks` ranks ({glue:text}`tr_layout` layout): an
# unrolled network of {glue:text}`tr_live_layers` layers with a tiny random DRUNet (8 channels, so that it
# trains in a minute on a laptop), on batches of {glue:text}`tr_live_batch` crops of
# {glue:text}`tr_live_crop`² drawn from the training photos (the denoisers' training photos; the chapters'
# photos are held out), blurred by the $K = 4$ frames of chapter 01 with noise $\sigma_n = 0.01$. The rank
# function is `distinv.training.train_rank`, the one `data_scripts/train_unrolled.py` launches; it writes a
# resumable checkpoint (here into a temporary folder).

# %%
live = dict(n_layers=live_layers, crop=live_crop, init="random-tiny", batch=live_batch, steps=live_steps,
            layout=layout, patch=max(16, live_crop // 2), overlap=8, max_batch_size=8, lr=live_lr, lr_scalars=3e-2,
            checkpoint_every=max(live_steps, 1), device=device, autocast=False, progress=True)
curves = {}
with tempfile.TemporaryDirectory() as folder:
    trained = distinv.launch(train_rank, dict(live, checkpoint=f"{folder}/ranks.ckpt"), nprocs=n_ranks, timeout=1800)
    curves[f"{n_ranks} rank{'s' if n_ranks > 1 else ''}"] = trained["losses"]
    if compare_one_rank and n_ranks > 1:
        single = distinv.launch(train_rank, dict(live, checkpoint=f"{folder}/one.ckpt"), nprocs=1, timeout=1800)
        curves["1 rank"] = single["losses"]
loss_curves_figure(curves).show()

# %% [markdown]
# *Figure 1. The loss (the batch's negative PSNR) at every step of the live training. A tiny random
# network starts far from a good solver, so the loss falls fast. Each step sees new crops, so the curve is
# noisy.*

# %%
losses = next(iter(curves.values()))
quarter = max(1, len(losses) // 4)
glue("tr_live_steps", live_steps, display=False)
glue("tr_live_layers", live_layers, display=False)
glue("tr_live_batch", live_batch, display=False)
glue("tr_live_crop", live_crop, display=False)
glue("tr_live_first", -sum(losses[:quarter]) / quarter, display=False)
glue("tr_live_last", -sum(losses[-quarter:]) / quarter, display=False)
glue("tr_live_minutes", trained["minutes"], display=False)
curve_gap = max(abs(a - b) for a, b in zip(*curves.values())) if len(curves) > 1 else 0.0
glue("tr_live_gap", curve_gap, display=False)

# %% [markdown]
# The training PSNR rose from {glue:text}`tr_live_first:.1f` dB (mean of the first quarter of the steps) to
# {glue:text}`tr_live_last:.1f` dB (last quarter) in {glue:text}`tr_live_minutes:.1f` minutes. On 1 rank and on
# {glue:text}`tr_ranks` the losses differ by at most {glue:text}`tr_live_gap:.1e` dB over the whole run: the
# same training, in float32, where the order of the sums differs between layouts and rank counts.
#
# ## The shipped network against PnP-HQS
#
# `unrolled-hqs-gray` ({glue:text}`tr_layers` layers, 5 CG steps each) was trained by
# `data_scripts/train_unrolled.py` on the CPU profile's problem (512² photos, $K = 4$, $\sigma_n = 0.01$) for
# {glue:text}`tr_train_steps` steps ({glue:text}`tr_train_minutes:.0f` minutes on {glue:text}`tr_train_ranks`
# rank(s) with {glue:text}`tr_train_threads` CPU thread(s) each), starting from the shipped small DRUNet. The network is short on
# purpose. Unrolling pays where a few learned layers replace many hand-set iterations, and a layer costs
# about as much as an iteration. A shorter network also takes more training steps per CPU minute. So it is
# compared twice: with PnP-HQS run for as many iterations as it has layers (where we aimed for 1 dB), and
# with PnP-HQS's best over 1 to 50 iterations. The benchmark
# `python -m distinv.training.bench quality --size 512` runs the network and PnP-HQS (the library's defaults,
# each iteration count a run of its own) on the four held-out photos.

# %%
summary = quality_doc["summary"]
record = available_unrolled()["unrolled-hqs-gray"]
glue("tr_layers", summary["layers"], display=False)
glue("tr_train_steps", record["training"]["steps_done"], display=False)
glue("tr_train_minutes", record["training"]["minutes"], display=False)
glue("tr_gain", summary["gain_db"], display=False)
glue("tr_psnr_unrolled", summary["psnr_unrolled"], display=False)
glue("tr_psnr_hqs_same", summary["psnr_hqs_same"], display=False)
glue("tr_hqs_best", summary["hqs_best"]["psnr"], display=False)
glue("tr_hqs_best_iterations", summary["hqs_best"]["iterations"], display=False)
glue("tr_hqs_best_seconds", summary["hqs_best"]["seconds"], display=False)
glue("tr_unrolled_to_best", summary["unrolled_to_hqs_best_s"], display=False)
glue("tr_speedup", summary["speedup_to_hqs_best"], display=False)
glue("tr_gain_min", min(summary["per_photo_gain_db"].values()), display=False)
glue("tr_gain_max", max(summary["per_photo_gain_db"].values()), display=False)
glue("tr_gain_verdict", "at least" if quality_doc["targets"]["gain_at_least_1_db"] else "less than",
     display=False)
glue("tr_train_batch", record["training"]["batch"], display=False)
glue("tr_train_crop", record["training"]["crop"], display=False)
glue("tr_train_threads", record["training"]["threads_per_rank"], display=False)
glue("tr_train_ranks", record["training"]["nprocs"], display=False)
hqs_defaults = SolverConfig(solver="pnp-hqs")
hqs_sigmas = hqs_defaults.sigmas(summary["layers"])
glue("tr_w_first", record["weights"][0], display=False)
glue("tr_w_last", record["weights"][-1], display=False)
glue("tr_hqs_w", hqs_defaults.hqs_weight, display=False)
glue("tr_sigma_first", record["sigmas"][0], display=False)
glue("tr_sigma_last", record["sigmas"][-1], display=False)
glue("tr_hqs_sigma_first", hqs_sigmas[0], display=False)
glue("tr_hqs_sigma_last", hqs_sigmas[-1], display=False)
over_best = summary["psnr_unrolled"] - summary["hqs_best"]["psnr"]
glue("tr_over_best", abs(over_best), display=False)
glue("tr_over_best_side", "above" if over_best >= 0 else "below", display=False)
display(quality_table(quality_doc))

# %% [markdown]
# *Table 2. PSNR on the held-out photos ({glue:text}`tr_q_size`², {glue:text}`tr_q_ranks` rank(s),
# {glue:text}`tr_q_threads` thread(s) each): start point, PnP-HQS with as many iterations as the network has
# layers, the network, and the wall time of each.*

# %%
glue("tr_q_size", quality_doc["config"]["size"], display=False)
glue("tr_q_ranks", quality_doc["config"]["nprocs"], display=False)
glue("tr_q_threads", quality_doc["config"]["threads_per_rank"], display=False)
psnr_time_figure(quality_doc).show()

# %% [markdown]
# *Figure 2. Mean PSNR over the held-out photos against wall time: PnP-HQS for each iteration count from 1 to
# 50 (each point a run of its own, since its schedule depends on the count), and the network after each of
# its layers.*
#
# With the same number of iterations the network gains {glue:text}`tr_gain:.2f` dB in mean PSNR
# ({glue:text}`tr_psnr_unrolled:.2f` against {glue:text}`tr_psnr_hqs_same:.2f` dB; from
# {glue:text}`tr_gain_min:.2f` to {glue:text}`tr_gain_max:.2f` dB per photo), {glue:text}`tr_gain_verdict` the
# 1 dB we aimed for, after {glue:text}`tr_train_steps` steps (crops of {glue:text}`tr_train_crop`²,
# {glue:text}`tr_train_batch` per step). Against time: PnP-HQS's best mean PSNR ({glue:text}`tr_hqs_best:.2f` dB,
# after {glue:text}`tr_hqs_best_iterations` iterations, {glue:text}`tr_hqs_best_seconds:.0f` s) is reached by the
# network after {glue:text}`tr_unrolled_to_best:.0f` s, {glue:text}`tr_speedup:.1f`× sooner, and its last layer
# ends {glue:text}`tr_over_best:.2f` dB {glue:text}`tr_over_best_side` that best.
#
# What the network learned is not PnP-HQS's schedule. Its penalty weights $w_t$ go from
# {glue:text}`tr_w_first:.3f` to {glue:text}`tr_w_last:.3f` (PnP-HQS: {glue:text}`tr_hqs_w:.2f` in every iteration),
# and its noise levels $\sigma_t$ from {glue:text}`tr_sigma_first:.3f` to {glue:text}`tr_sigma_last:.3f` (PnP-HQS:
# {glue:text}`tr_hqs_sigma_first:.3f` to {glue:text}`tr_hqs_sigma_last:.3f`). A small $w_t$ makes the data step
# nearly an unregularised deconvolution, held back only by stopping CG after a few steps; the denoiser then
# cleans it up.
#
# Why an HQS layer and not a PGD one, measured by `python -m distinv.training.bench layer --size 512`:
# an iteration of PnP-HQS takes {glue:text}`tr_hqs_over_pgd:.2f`× as long as one of PnP-PGD (the CG data step
# is {glue:text}`tr_hqs_data_share:.1%` of it), and after {glue:text}`tr_layer_iterations` iterations PnP-HQS is
# at {glue:text}`tr_layer_hqs_psnr:.2f` dB against {glue:text}`tr_layer_pgd_psnr:.2f` dB for PnP-PGD.

# %%
glue("tr_hqs_over_pgd", layer_doc["hqs_over_pgd_iteration_time"], display=False)
glue("tr_hqs_data_share", layer_doc["hqs_data_share"], display=False)
glue("tr_layer_iterations", layer_doc["pnp-hqs"]["iterations"], display=False)
glue("tr_layer_hqs_psnr", layer_doc["pnp-hqs"]["psnr"], display=False)
glue("tr_layer_pgd_psnr", layer_doc["pnp-pgd"]["psnr"], display=False)

# %% [markdown]
# ### The same comparison, live
#
# The shipped network and PnP-HQS with as many iterations, on {glue:text}`tr_compare_image`
# ({glue:text}`tr_compare_size`², held out), on {glue:text}`tr_ranks` ranks through the runner of every
# chapter: `run_reconstruction` with `solver="unrolled"`.

# %%
compare = dict(problem="images", size=compare_size, image=compare_image, device=device, pinv_iterations=0,
               progress=False, unrolled_weights=weights)
network = distinv.launch(run_reconstruction, dict(compare, solver="unrolled"), nprocs=n_ranks, timeout=1800)
layers = network["final"]["iterations"]
hqs = distinv.launch(run_reconstruction, dict(compare, solver="pnp-hqs", iterations=layers), nprocs=n_ranks,
                     timeout=1800)
image_row({"ground truth": network["x_true_preview"], "start (back-projection)": network["x_init_preview"],
           f"PnP-HQS, {layers} iterations": hqs["x_hat_preview"],
           f"unrolled, {layers} layers": network["x_hat_preview"]}, height=380).show()
glue("tr_compare_image", compare_image, display=False)
glue("tr_compare_size", compare_size, display=False)
glue("tr_compare_unrolled", network["final"]["psnr"], display=False)
glue("tr_compare_hqs", hqs["final"]["psnr"], display=False)
glue("tr_compare_unrolled_s", network["final"]["t_per_iteration"], display=False)
glue("tr_compare_hqs_s", hqs["final"]["t_per_iteration"], display=False)

# %% [markdown]
# *Figure 3. Ground truth, start point, PnP-HQS and the network, each image on its own grey range.*
#
# Here the network reaches {glue:text}`tr_compare_unrolled:.2f` dB against {glue:text}`tr_compare_hqs:.2f` dB
# for PnP-HQS, at {glue:text}`tr_compare_unrolled_s:.2f` s per layer against
# {glue:text}`tr_compare_hqs_s:.2f` s per iteration.
#
# ## Memory of a training step
#
# Training keeps every layer's activations for the backward pass: $L$ denoiser passes over the whole image.
# Two remedies, both in `UnrolledTrainer`: **activation checkpointing** (`checkpoint_layers`, and
# `checkpoint_tiles` per tile batch: `torch.utils.checkpoint` recomputes a layer's activations during the
# backward pass instead of storing them) and the **sharded layout** (each rank holds its slab's activations).
# `python -m distinv.training.bench memory` runs one training step per case in a fresh process and records each
# rank's peak resident memory (a {glue:text}`tr_mem_layers`-layer network with the shipped DRUNet, sharded
# layout, one tile at a time).

# %%
glue("tr_mem_layers", memory_doc["config"]["n_layers"], display=False)
memory_figure(memory_doc).show()

# %% [markdown]
# *Figure 4. Peak memory per rank of one training step against image side. Hollow points on dotted lines were
# not run: their prediction (linear in the pixel count from the measured sizes of the series) exceeded the
# memory cap of this 24 GiB machine.*

# %%
ratios = memory_ratios(memory_doc)
sizes = sorted(ratios)
measured = [s for s in sizes if ratios[s]["on_over_off_1"] and ratios[s]["on_over_off_1"]["measured"]]
largest = max(measured)
glue("tr_mem_largest", largest, display=False)
glue("tr_mem_ckpt_ratio", ratios[largest]["on_over_off_1"]["ratio"], display=False)
glue("tr_mem_two_over_one", ratios[largest]["two_over_one_off"]["ratio"], display=False)
glue("tr_mem_two_over_one_on", ratios[largest]["two_over_one_on"]["ratio"], display=False)
top = max(sizes)
glue("tr_mem_top", top, display=False)
glue("tr_mem_top_ckpt_ratio", ratios[top]["on_over_off_1"]["ratio"], display=False)
glue("tr_mem_top_ckpt_measured", "measured" if ratios[top]["on_over_off_1"]["measured"] else "predicted",
     display=False)
glue("tr_mem_top_two_over_one_on", ratios[top]["two_over_one_on"]["ratio"], display=False)
two_ranks_on = next(r for r in memory_doc["rows"] if (r["size"], r["ranks"], r["checkpointing"]) == (largest, 2, True))
glue("tr_mem_baseline_share", max(rank["baseline_bytes"] / rank["peak_bytes"] for rank in two_ranks_on["per_rank"]),
     display=False)

# %% [markdown]
# At {glue:text}`tr_mem_largest`², the largest side measured both ways, checkpointing brings the peak of one rank
# to {glue:text}`tr_mem_ckpt_ratio:.2f`× its value without (target ≤ 1/3), and two ranks hold
# {glue:text}`tr_mem_two_over_one:.2f`× the peak of one without checkpointing (target ≤ 0.6). At
# {glue:text}`tr_mem_top`² the first ratio is {glue:text}`tr_mem_top_ckpt_ratio:.2f`
# ({glue:text}`tr_mem_top_ckpt_measured`). With checkpointing on, the second is
# {glue:text}`tr_mem_two_over_one_on:.2f` at {glue:text}`tr_mem_largest`² and
# {glue:text}`tr_mem_top_two_over_one_on:.2f` at {glue:text}`tr_mem_top`²: up to {glue:text}`tr_mem_baseline_share:.0%` of
# the peak of each of the two ranks at {glue:text}`tr_mem_largest`² with checkpointing is what the rank held
# before the step (imports, the network, the photo), which no split of the image reduces.
# Every case (folded):

# %% tags=["hide-output"]
display(memory_table(memory_doc))

# %% [markdown]
# ## Running it at scale
#
# The same rank function trains on GPUs: `python data_scripts/train_unrolled.py --device cuda --nprocs 4
# --layout sharded --checkpointing` (or under `torchrun`), with bf16 autocast on CUDA, tqdm on rank 0 and a
# checkpoint that a killed run resumes from. Its model card (`lib/distinv/weights/MODEL_CARD.md`) holds the
# validation table of the network it writes.

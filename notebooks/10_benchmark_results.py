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
# # Benchmark results
#
# This chapter measures what distributing an imaging inverse problem costs and buys: time per
# iteration and where it goes, speedup over one rank, peak memory per rank, and whether the
# distributed result equals the single-process one. Every number on this page is computed from
# result files by the code below; none is typed by hand.
#
# **Method.** A benchmark *grid* (a YAML file in `distinv/bench/configs/`) is the cartesian product
# of use case × implementation × ranks × image size × prior settings. `distinv.bench.runner.run_config`
# runs each point in fresh ranks through `distinv.launch` (or in place under `torchrun`, see
# {doc}`../cluster`) and writes its rows to a results folder as soon as it finishes, one CSV file per
# run, atomically; a rerun skips the points already done. Per iteration, rank 0 records the wall time
# between two barriers and its split into disjoint parts,
#
# $$
# t_{\text{total}} = t_{\text{grad}} + t_{\text{prior}} + t_{\text{comm}} + t_{\text{other}},
# $$ (eq-time-split)
#
# where $t_{\text{comm}}$ and the bytes sent come from distinv's communication ledger, PSNR and SSIM
# against the ground truth, and the peak memory of every rank (CUDA max allocated on a GPU, peak
# resident set size on CPU). Each run carries its provenance: commit, package versions, device,
# threads per rank, seed and the hash of its configuration. Times are medians over the timed
# iterations, after a warm-up.
#
# The first use case is the **tiled prior** alone (`denoise`): a noisy image $y = x + \sigma n$ is
# denoised by iterating $x_{k+1} = D_\sigma(x_k)$ with a small DRUNet applied tile by tile, by deepinv's
# `DistributedProcessing` and by distinv's `TiledDenoiser` with the same tiles. Its weights are
# random (seeded): the timings and the equivalence are those of a trained network, the PSNR is not.
# The second (`allreduce`) measures the collective the replicated prior pays once per iteration, for
# the scaling model at the end.

# %% tags=["parameters"]
grids = ["cpu-collectives", "cpu"]  # shipped configurations (or YAML paths) run by this chapter
results_dir = "../results/local/cpu"  # where this machine's runs are stored
external_dir = "../results/external"  # one sub-folder per machine whose results were produced elsewhere
prior_dir = "../results/prior"  # JSON outputs of the tiled-prior benchmark (python -m distinv.bench.studies.prior)
schedule_dir = "../results/schedule"  # JSON outputs of python -m distinv.bench.studies.schedule
run_grids = True  # False: only show what the folders already hold
force = False  # rerun points already done
model_image = 4096  # image side of the scaling prediction (as in the published figures)
model_patch = 448  # tile core of the prediction (published: 448)
model_overlap = 32  # tile halo of the prediction (published: 32)
model_channels = 3  # colour images, as in the published figures
assumed_link_gbs = 25.0  # what-if interconnect bandwidth (GB/s; 200 Gb/s InfiniBand HDR) for GPU models
assumed_link_latency_us = 5.0  # what-if interconnect latency (µs)

# %%
import json
from pathlib import Path

import pandas as pd
from IPython.display import display
from myst_nb import glue

from distinv.bench.__main__ import resolve_config_path
from distinv.bench.findings import (best_speedup, failed_runs_table, rank_agreement, run_counts, sharded_memory_ratio,
                                    time_shares)
from distinv.bench.runner import run_config
from distinv.bench.store import load_results
from distinv.bench.studies.scaling import (PREDICTION_FORMATS, CollectiveCost, fit_models, load_published_scaling,
                                           model_constants, predict_all, prediction_table, published_conditions)
from distinv.bench.studies.schedule import dynamic_speedups, file_settings, schedule_figure, schedule_table
from distinv.bench.summary import summarise_runs, variant_label
from distinv.book import setup_plotly
from distinv.plots import benchmarks
from distinv.plots.explorer import ResultsExplorer
from distinv.plots.prior import (FILE_SUMMARY_FORMATS, MEMORY_GROWTH_FORMATS, NETWORK_LAYOUT_FORMATS, REGION_FORMATS,
                                 TRADEOFF_FORMATS, agreement_cost_figure, best_tradeoff, file_summary, load_prior_runs,
                                 memory_growth, network_layout_speedups, overlap_sweeps, paired_speedups_by_file,
                                 prior_table, region_gains, slab_share_range, styled_table, tradeoff_table)
from distinv.plots.tables import display_table

setup_plotly()
local_source = Path(results_dir).name
external = sorted(p for p in Path(external_dir).glob("*") if p.is_dir())
folders = {local_source: Path(results_dir), **{f"external/{p.name}": p for p in external}}


def glue_numbers(prefix: str, numbers: dict) -> None:
    """Glue every value of ``numbers`` as ``prefix_key`` for the prose below (myst-nb; numpy scalars as Python
    numbers, whose text the ``{glue:text}`` formats can read)."""
    for key, value in numbers.items():
        glue(f"{prefix}_{key}", value.item() if hasattr(value, "item") else value, display=False)


# %% [markdown]
# ## Running the grid
#
# The grids of this profile run here, on this machine; points already in the results folder are
# skipped, so re-executing the chapter only runs what is missing.

# %%
summaries = []
if run_grids:
    for grid in grids:
        summaries.append(run_config(resolve_config_path(grid), results_dir=results_dir, force=force))

# %%
frame = load_results(folders)
frame["variant"] = [variant_label(i, l) for i, l in zip(frame.get("implementation"), frame.get("layout"))]
runs = summarise_runs(frame)
failed = frame[frame["status"] == "error"]
denoise = runs[runs["use_case"] == "denoise"]
glue_numbers("runs", run_counts(runs, failed, ran=sum(len(s.ran) for s in summaries),
                                skipped=sum(len(s.skipped) for s in summaries)))

# %% [markdown]
# The results folders hold {glue:text}`runs_runs` successful runs from {glue:text}`runs_sources`
# source(s), counted per source in the table below. This execution ran {glue:text}`runs_ran` grid point(s)
# and skipped {glue:text}`runs_skipped` already done; {glue:text}`runs_failed` run(s) failed, listed with
# their errors at the end of the page.
#
# ## Where the results come from
#
# Results produced on another machine (a GPU node, a cluster job) are copied, as they are, into a
# sub-folder of `results/external/` named after the machine; they appear here beside this machine's
# runs, with their provenance. A speedup is only ever a ratio of two runs from the same source.

# %%
provenance = benchmarks.provenance_table(runs)
provenance.insert(1, "runs", provenance["source"].map(runs["source"].value_counts()))
display_table(provenance, {})

# %% [markdown]
# ## Where the time goes
#
# Each bar is one run's median iteration split as in {eq}`eq-time-split`. With the replicated layout
# every rank holds the full image, processes its share of the tiles and one all-reduce sums the
# full-size partial outputs: the prior part shrinks with the ranks, the all-reduce does not.

# %%
for source, part in denoise.groupby("source"):
    display(benchmarks.time_breakdown_figure(part, title=f"Time per iteration · {source}"))
glue_numbers("share", time_shares(denoise))

# %% [markdown]
# Over all runs on one rank the prior takes {glue:text}`share_prior_one_rank:.0%` of the iteration time. On
# several ranks the prior's share is {glue:text}`share_prior:.0%`, communication's
# {glue:text}`share_comm:.0%` and the rest's (waiting at the barrier for the slowest rank, zero-filling and
# copies) {glue:text}`share_other:.0%`.
#
# Every run, with its median time per iteration and its split (milliseconds), the bytes communicated per
# iteration by rank 0, the peak memory of the busiest rank, the PSNR after the last iteration, and the tile
# work multiplier (pixels the network processes / pixels in the image: tiles are extended by their
# overlap), is in the table below (folded: click to open).

# %% tags=["hide-output"]
display_table(benchmarks.summary_table(denoise), {"total ms": "{:.1f}", "prior ms": "{:.1f}", "comm ms": "{:.1f}",
                                               "other ms": "{:.1f}", "comm MiB/it": "{:.1f}", "peak MiB/rank": "{:.0f}",
                                               "PSNR dB": "{:.2f}", "work ×": "{:.3f}"})

# %% [markdown]
# ## Speedup and parallel efficiency
#
# Speedup $S(P) = T(1)/T(P)$ and efficiency $S(P)/P$, each against the one-rank run of the same
# source, implementation and image size.

# %%
for source, part in denoise.groupby("source"):
    display(benchmarks.speedup_figure(part, title=f"Strong scaling · {source}"))
glue_numbers("best", best_speedup(benchmarks.speedup_table(denoise)))

# %% [markdown]
# The best measured speedup is {glue:text}`best_speedup:.2f`× on {glue:text}`best_ranks` ranks
# ({glue:text}`best_variant`, {glue:text}`best_size`², source {glue:text}`best_source`, efficiency
# {glue:text}`best_efficiency:.0%`), with {glue:text}`best_threads` thread(s) per rank.
#
# ## Peak memory per rank
#
# Peak memory of the busiest rank against the image side, log-log. In the replicated layout every
# rank holds the full image and a full-size output, so memory per rank does not fall with more ranks;
# the sharded layout keeps one slab plus its halos per rank.

# %%
for source, part in denoise.groupby("source"):
    display(benchmarks.memory_figure(part, title=f"Peak memory per rank · {source}"))
glue_numbers("sharded", sharded_memory_ratio(denoise))

# %% [markdown]
# On several ranks, over the {glue:text}`sharded_pairs` (source, size) pairs measured in both layouts, the
# sharded layout's peak memory per rank is {glue:text}`sharded_low:.2f` to {glue:text}`sharded_high:.2f`
# times the replicated one's: where the ratio is close to 1, the network's activations for a batch of tiles,
# not the image, set the peak.
#
# ## The distributed result equals the single-process one
#
# PSNR after each iteration for the same settings on one and on several ranks. Because each iterate
# feeds the next, any difference would grow with the iterations.

# %%
glue_numbers("agreement", rank_agreement(frame))
benchmarks.psnr_figure(frame[(frame["use_case"] == "denoise") & (frame["source"] == local_source)])

# %% [markdown]
# Across {glue:text}`agreement_pairs` (run, iteration) pairs with a one-rank reference, the largest PSNR
# difference between several ranks and one is {glue:text}`agreement_max_gap_db:.1e` dB.
#
# ## distinv and deepinv side by side
#
# Same tiles (patch, overlap, batch, crop blending) for both implementations: time per iteration
# and peak memory per rank.

# %%
for source, part in denoise.groupby("source"):
    display(benchmarks.implementation_figure(part, title=f"distinv vs deepinv · {source}"))

# %% [markdown]
# ## The tiled prior on its own: agreement against cost
#
# `python -m distinv.bench.studies.prior` times one denoiser call on a synthetic noisy image: the untiled
# network, deepinv's `DistributedProcessing` (crop-assign) and distinv's `TiledDenoiser` (smooth
# blending), in one run per JSON file of `results/prior/` (commands in the README). *Agreement* is
# the PSNR of the tiled output against the untiled one; the *work multiplier* is the number of pixels
# the network processes over the number in the image; the *tiler overhead* is the median time minus
# the time spent inside the network on the slowest rank (window copies, blending, communication).
#
# The files, one row each (model `small`: random DRUNet weights, for timing; `shipped`: the trained prior,
# for agreement). A file run with `--rounds` ran every case once per round, interleaved with the others;
# *drift between rounds* is how far the median of a case moved from one round to another, *spread of
# repeats* how far its repeats inside one round did (the largest over the file's cases), and *network
# share* the network's median share of a tiled call on the slowest rank (two medians of separate timings,
# so it can pass 100 %).

# %%
prior_runs = load_prior_runs(prior_dir)
if prior_runs.empty:
    raise FileNotFoundError(f"no benchmark file in {prior_dir}: run python -m distinv.bench.studies.prior (see the README)")
files = file_summary(prior_runs)
glue_numbers("prior", {"files": len(files), "drift_max": files["drift between rounds (max %)"].max() / 100,
                       "spread_max": files["spread of repeats (max %)"].max() / 100,
                       "share_low": files["network share (median %)"].min() / 100,
                       "share_high": files["network share (median %)"].max() / 100})
display_table(files, FILE_SUMMARY_FORMATS)

# %% [markdown]
# Over the {glue:text}`prior_files` files, a case's median moved by up to {glue:text}`prior_drift_max:.0%`
# from one round to another, and its repeats inside one round by up to {glue:text}`prior_spread_max:.0%`
# (each file's figures are in the table): this machine's speed moves while a file runs, so the speedups
# below divide two cases of the same round, whose drift cancels out. The network's median share of a tiled
# call is {glue:text}`prior_share_low:.0%` to {glue:text}`prior_share_high:.0%` depending on the file: the
# tiler's own work (windows, blending, communication) is the rest.
#
# Every row of every file, one table per file (an empty agreement means exact; the regions are the border
# band, the tile seams and the rest, each `overlap` wide), folded:

# %% tags=["hide-output"]
for source, rows in prior_runs.groupby("source", sort=False):
    display(styled_table(prior_table(rows)).set_caption(source))

# %% [markdown]
# **Memory.** In the sharded layout a rank holds its input slab, its output slab and the halo rows, nothing
# of the size of the whole signal; in the replicated layouts every rank holds the whole signal and a whole
# output. So from the smallest to the largest size of a file, a sharded rank's peak memory should grow by
# about two *slab shares* (the growth of one rank's share of the float32 signal) and a replicated rank's by
# many more. Over the files with several sizes, the growth in slab shares is
# {glue:text}`growth_sharded_low:.1f` to {glue:text}`growth_sharded_high:.1f` for distinv's sharded layout,
# {glue:text}`growth_replicated_low:.1f` to {glue:text}`growth_replicated_high:.1f` for its replicated one and
# {glue:text}`growth_deepinv_low:.1f` to {glue:text}`growth_deepinv_high:.1f` for deepinv (each rank of each
# rank count in the folded table below).

# %% tags=["hide-output"]
growth = memory_growth(prior_runs)
for tiler, key in (("distinv-sharded", "sharded"), ("distinv", "replicated"), ("deepinv", "deepinv")):
    glue_numbers(f"growth_{key}", slab_share_range(growth, tiler))
display_table(growth, MEMORY_GROWTH_FORMATS)

# %% [markdown]
# **Speedups paired by round.** Every tiled row of a `--rounds` file against deepinv on as many ranks
# (same size and overlap) and against the untiled network: in each round the ratio of the two cases'
# medians, then the median and the range of those ratios over the rounds. Cases of the same round ran
# minutes apart at most, so a drift of the machine's speed slower than one round cancels out of their
# ratio; the range shows what pairing does not remove. The *work ratio* is deepinv's tile work multiplier
# over the row's: what the tiles alone can gain over deepinv at the same patch and overlap when the network
# takes all the time (the network shares above say how close to all it is) and costs the same per pixel in
# both tilers' windows. A speedup above the work ratio comes from elsewhere: window shapes that the network
# runs faster per pixel, deepinv's copies, or the noise that the range shows; the one-slab-per-rank rows
# (`distinv-slab`) show the opposite, windows so large that the network runs slower per pixel.

# %% tags=["hide-output"]
display_table(paired_speedups_by_file(prior_runs), {})

# %% [markdown]
# On a CPU, how the network's tensors are laid out in memory matters as much as the tiler: with its
# weights and inputs stored channels-last (`TilingConfig(channels_last=True)`, `--channels-last` in
# the benchmark, the default of the solvers) oneDNN runs DRUNet's convolutions much faster. Files run
# with the same settings both ways give the speedup of each implementation (the NCHW file's time over the
# channels-last file's, lowest and highest over the cases):

# %%
layout = network_layout_speedups(prior_runs)
glue_numbers("layout", {"low": float(layout["speedup min"].min()), "high": float(layout["speedup max"].max())})
display_table(layout, NETWORK_LAYOUT_FORMATS)

# %% [markdown]
# With a channels-last network the same cases ran {glue:text}`layout_low:.2f`× to
# {glue:text}`layout_high:.2f`× faster.
#
# A larger overlap buys agreement with work. The runs with several overlaps show the trade-off of
# each tiler. Below each figure, the first table gives deepinv at overlap 32 and, for each other tiler, its
# fastest setting that agrees with the untiled network at least as well, with its speedup over deepinv and
# the work ratio; the second gives, region by region (border band, tile seams, elsewhere), the agreement
# gained by smooth blending over crop-assign on the same tiles, and by distinv's tiles over deepinv's under
# the same crop rule: tiles cut at the signal border see what the untiled network sees, reflect-padded ones
# do not, and smooth blending only changes the seams.

# %%
sweeps = overlap_sweeps(prior_runs)
for (source, size, ranks), sweep in sweeps:
    agreement_cost_figure(sweep, title=f"{source}: {size}², {ranks} ranks").show()
    display(display_table(tradeoff_table(sweep, "deepinv", 32), TRADEOFF_FORMATS))
    display(display_table(region_gains(sweep, 32), REGION_FORMATS))
glue_numbers("tradeoff", best_tradeoff(sweeps, "deepinv", 32))

# %% [markdown]
# The best trade-off measured ({glue:text}`tradeoff_sweep`): {glue:text}`tradeoff_tiler` at overlap
# {glue:text}`tradeoff_overlap` agrees with the untiled network to {glue:text}`tradeoff_agreement_db:.1f` dB
# against {glue:text}`tradeoff_reference_agreement_db:.1f` dB for deepinv at overlap 32, and runs
# {glue:text}`tradeoff_speedup:.2f`× as fast as it, for a work ratio of {glue:text}`tradeoff_work_ratio:.2f`×.
#
# ## Which rank runs which tile: static or dynamic schedule
#
# In the replicated layout any rank can run any tile. deepinv fixes the split in advance (tiles
# dealt round-robin), and so does distinv by default (contiguous runs of tiles of equal work,
# `schedule="static"`). With
# `TilingConfig(schedule="dynamic")` a rank claims the next batch of tiles, largest first, from a
# counter in the process group's store whenever it is ready for more, so a rank slowed down by its
# machine runs fewer tiles. The tilers differ by less than the drift of this machine between
# launches, so `python -m distinv.bench.studies.schedule` runs distinv's two schedules and deepinv's
# `DistributedProcessing` in the same ranks, one call each in turn, each rank pinned to its own core:
# once on balanced ranks and once with a busy process sharing one rank's core (the noisy neighbour of
# a shared node). Inside one launch the ratios are also the least noisy comparison of distinv's
# static split with deepinv's. In the figures, a bar is the median time per call, its whiskers the
# fastest and the slowest call, its label the tiles each rank ran.

# %%
schedule_files = sorted(Path(schedule_dir).glob("*.json"))
if not schedule_files:
    raise FileNotFoundError(f"no schedule benchmark file in {schedule_dir}: run python -m distinv.bench.studies.schedule")
documents = {path.stem: json.loads(path.read_text()) for path in schedule_files}
for name, document in documents.items():
    schedule_figure(document, title=f"{name}<br><sup>{file_settings(document)}</sup>").show()
glue_numbers("schedule", dynamic_speedups(list(documents.values())))

# %% [markdown]
# Paired turn by turn, the dynamic schedule runs {glue:text}`schedule_contended_low:.2f`× to
# {glue:text}`schedule_contended_high:.2f`× as fast as the static split when a busy process shares one
# rank's core, and {glue:text}`schedule_balanced_low:.2f`× to {glue:text}`schedule_balanced_high:.2f`× on
# balanced ranks (the median over a condition's turns, lowest and highest over the files). distinv's static
# split runs {glue:text}`schedule_static_deepinv_low:.2f`× to {glue:text}`schedule_static_deepinv_high:.2f`×
# as fast as deepinv's. Every condition, with each tiler's median time per call and the paired speedups
# (median and range over the turns):

# %%
display_table(pd.concat([schedule_table(document, name) for name, document in documents.items()],
                        ignore_index=True), {f"{tiler} (s)": "{:.2f}" for tiler in ("distinv", "distinv-dynamic",
                                                                                      "deepinv")})

# %% [markdown]
# ## Explore
#
# In a live session the dropdowns pick the results source, the use case and the view; the static
# page shows the default view below the controls.

# %%
ResultsExplorer(runs).show()

# %% [markdown]
# ## A strong-scaling model to 64 ranks
#
# We cannot run 64 GPUs here, so we predict them from measured parts: the prior's time per processed
# pixel on one rank $c_{\text{pix}}$, the all-reduce latency $\alpha$ and inverse bandwidth $\gamma$
# fitted to the measured two-rank all-reduces, and the unsplit time per pixel $c_{\text{other}}$:
#
# $$
# T(P) = \left\lceil \tfrac{T}{P} \right\rceil (p + 2o)^2\, c_{\text{pix}}
#      + 2(P-1)\,\alpha + \tfrac{2(P-1)}{P}\, n_{\text{bytes}}\, \gamma + N^2 c_{\text{other}},
# $$ (eq-scaling-model)
#
# for $T = \lceil N/p \rceil^2$ tiles of core $p$ and halo $o$. The ceiling is the load imbalance: with
# fewer tiles per rank than ranks' worth of work, some ranks idle. The fitted constants of each source's
# model (a source without the runs a model needs is named with the reason):

# %%
models, reasons = fit_models(runs)
for source, reason in reasons.items():
    print(f"{source}: no model ({reason})")
link = CollectiveCost(latency_s=assumed_link_latency_us * 1e-6, seconds_per_byte=1e-9 / assumed_link_gbs)
predictions = predict_all(models, runs, model_image, model_patch, model_overlap, channels=model_channels, link=link)
published = load_published_scaling()
glue("published_conditions", published_conditions(), display=False)
display_table(model_constants(models), {"c_pix (ns/pixel)": "{:.3f}", "alpha (µs)": "{:.1f}",
                                         "bandwidth (GB/s)": "{:.2f}", "c_other (ns/pixel)": "{:.3f}"})

# %% [markdown]
# The published figures below come from **another code on another machine**: the BenchOpt benchmark
# `numpex/benchmark_invprob_largescale` on Tesla V100 GPUs, for multi-frame super-resolution with 8
# operators and a full-size colour DRUNet. Only the *shape* of the curves is comparable with the model,
# not the times. *Conditions of the published figures:* {glue:text}`published_conditions`

# %%
benchmarks.scaling_figure(predictions, published[published["problem"] == "sr8"],
                       title=f"Speedup to 64 ranks: model ({model_image}², patch {model_patch} + {model_overlap}) "
                             "vs published V100")

# %% [markdown]
# Each prediction on 64 ranks, and the published figure at the same image size where there is one:

# %%
display_table(prediction_table(predictions, published, model_image), PREDICTION_FORMATS)

# %% [markdown]
# Each model's link is the one measured with its data: on the CPU machine, two gloo ranks through
# shared memory; on the GPU node, two ranks sharing one GPU through gloo, which copies through host
# memory and is far slower than NVLink or InfiniBand with NCCL. The line marked *assumed* keeps the
# GPU's measured compute and swaps in the interconnect figures of the parameters cell: an assumption,
# not a measurement. The ceiling term caps the speedup at the number of tiles; the all-reduce of the
# full image, which does not shrink with $P$, is what bends every curve.
#
# ## Failed runs
#
# A point that raises is stored with its error and the grid goes on; a rerun retries it. The
# {glue:text}`runs_failed` failed run(s) of the results folders:

# %%
display_table(failed_runs_table(failed), {})

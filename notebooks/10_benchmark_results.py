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
# of use case × implementation × ranks × image size × prior settings. `distinv.bench.run_config`
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
prior_dir = "../results/prior"  # JSON outputs of the tiled-prior benchmark (python -m distinv.bench.prior)
schedule_dir = "../results/schedule"  # JSON outputs of python -m distinv.bench.schedule
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

from IPython.display import Markdown, display

from distinv.bench import figures
from distinv.bench.__main__ import resolve_config_path
from distinv.bench.explorer import ResultsExplorer
from distinv.bench.prior_report import (agreement_cost_figure, load_prior_runs, memory_growth_sentence,
                                        network_layout_sentence, network_share_sentence, overlap_sweeps,
                                        paired_speedups, prior_table, region_sentence, round_drift_sentence,
                                        source_caption, styled_table, tradeoff_sentences)
from distinv.bench.runner import run_config
from distinv.bench.schedule import file_caption, schedule_figure, summary_sentence as schedule_sentence
from distinv.bench.scaling import (CollectiveCost, fit_models, load_published_scaling, model_constants, predict_all,
                                   prediction_lines, published_conditions)
from distinv.bench.sentences import (best_speedup_sentence, failed_runs_table, rank_agreement_sentence,
                                     runs_sentence, sharded_memory_sentence, time_share_sentence)
from distinv.bench.store import load_results
from distinv.bench.summary import summarise_runs, variant_label
from distinv.book import setup_plotly
from distinv.plots.tables import display_table

setup_plotly()
local_source = Path(results_dir).name
external = sorted(p for p in Path(external_dir).glob("*") if p.is_dir())
folders = {local_source: Path(results_dir), **{f"external/{p.name}": p for p in external}}

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
display(Markdown(runs_sentence(runs, failed, ran=sum(len(s.ran) for s in summaries),
                               skipped=sum(len(s.skipped) for s in summaries))))

# %% [markdown]
# ## Where the results come from
#
# Results produced on another machine (a GPU node, a cluster job) are copied, as they are, into a
# sub-folder of `results/external/` named after the machine; they appear here beside this machine's
# runs, with their provenance. A speedup is only ever a ratio of two runs from the same source.

# %%
figures.provenance_table(runs)

# %% [markdown]
# ## All runs
#
# Median time per iteration and its split (milliseconds), bytes communicated per iteration by rank 0,
# peak memory of the busiest rank, PSNR after the last iteration, and the tile work multiplier
# (pixels the network processes / pixels in the image: tiles are extended by their overlap).

# %%
figures.summary_table(denoise)

# %% [markdown]
# ## Where the time goes
#
# Each bar is one run's median iteration split as in {eq}`eq-time-split`. With the replicated layout
# every rank holds the full image, processes its share of the tiles and one all-reduce sums the
# full-size partial outputs: the prior part shrinks with the ranks, the all-reduce does not.

# %%
for source, part in denoise.groupby("source"):
    display(figures.time_breakdown_figure(part, title=f"Time per iteration · {source}"))


# %%
display(Markdown(time_share_sentence(denoise)))

# %% [markdown]
# ## Speedup and parallel efficiency
#
# Speedup $S(P) = T(1)/T(P)$ and efficiency $S(P)/P$, each against the one-rank run of the same
# source, implementation and image size.

# %%
for source, part in denoise.groupby("source"):
    display(figures.speedup_figure(part, title=f"Strong scaling · {source}"))

# %%
display(Markdown(best_speedup_sentence(figures.speedup_table(denoise))))

# %% [markdown]
# ## Peak memory per rank
#
# Peak memory of the busiest rank against the image side, log-log. In the replicated layout every
# rank holds the full image and a full-size output, so memory per rank does not fall with more ranks;
# the sharded layout keeps one slab plus its halos per rank.

# %%
for source, part in denoise.groupby("source"):
    display(figures.memory_figure(part, title=f"Peak memory per rank · {source}"))

# %%
if memory := sharded_memory_sentence(denoise):
    display(Markdown(memory))

# %% [markdown]
# ## The distributed result equals the single-process one
#
# PSNR after each iteration for the same settings on one and on several ranks. Because each iterate
# feeds the next, any difference would grow with the iterations.

# %%
figures.psnr_figure(frame[(frame["use_case"] == "denoise") & (frame["source"] == local_source)])

# %%
display(Markdown(rank_agreement_sentence(frame)))

# %% [markdown]
# ## distinv and deepinv side by side
#
# Same tiles (patch, overlap, batch, crop blending) for both implementations: time per iteration
# and peak memory per rank.

# %%
for source, part in denoise.groupby("source"):
    display(figures.implementation_figure(part, title=f"distinv vs deepinv · {source}"))

# %% [markdown]
# ## The tiled prior on its own: agreement against cost
#
# `python -m distinv.bench.prior` times one denoiser call on a synthetic noisy image: the untiled
# network, deepinv's `DistributedProcessing` (crop-assign) and distinv's `TiledDenoiser` (smooth
# blending), in one run per JSON file of `results/prior/` (commands in the README). *Agreement* is
# the PSNR of the tiled output against the untiled one; the *work multiplier* is the number of pixels
# the network processes over the number in the image; the *tiler overhead* is the median time minus
# the time spent inside the network on the slowest rank (window copies, blending, communication).

# %%
prior_runs = load_prior_runs(prior_dir)
if prior_runs.empty:
    display(Markdown(f"No benchmark file in `{prior_dir}` yet."))
for source, rows in prior_runs.groupby("source", sort=False):
    display(Markdown(source_caption(rows)))
    display(styled_table(prior_table(rows)))
    if growth := memory_growth_sentence(rows):
        display(Markdown(growth))
    if not (paired := paired_speedups(rows)).empty:
        display(Markdown(round_drift_sentence(rows) + " Speedups of each row, paired by round (median and range "
                         "over the rounds):"))
        display(display_table(paired, {}))
        display(Markdown(network_share_sentence(rows)))

# %% [markdown]
# *Tables. Every row of the tiled-prior benchmark files, one table per file (model `small`: random
# DRUNet weights, for timing; `shipped`: the trained prior, for agreement; an empty agreement means
# exact; the regions are the border band, the tile seams and the rest, each `overlap` wide). Below a
# file with several sizes, the growth of the peak memory per rank: in the sharded layout a rank holds
# its input slab, its output slab and the halo rows, nothing of the size of the whole signal; in the
# replicated layouts every rank holds the whole signal and a whole output. Below a file run with
# `--rounds`, the speedups paired by round: every case ran once per round, interleaved with the
# others, and each ratio divides two medians of the same round, so a drift of the machine's speed
# slower than one round cancels out of it. The sentence above the table says how far a case moved
# between rounds and between the repeats of one round; the range of each ratio shows what pairing
# does not remove. The *work ratio* is deepinv's tile work multiplier over the row's: what the tiles
# alone can gain over deepinv at the same patch and overlap when the network takes all the time (the
# sentence below the table says how close to all it is) and costs the same per pixel in both tilers'
# windows. A speedup above the work ratio comes from elsewhere: window shapes that the network runs
# faster per pixel, deepinv's copies, or the noise that the range shows; the one-slab-per-rank rows
# (`distinv-slab`) show the opposite, windows so large that the network runs slower per pixel.*
#
# On a CPU, how the network's tensors are laid out in memory matters as much as the tiler: with its
# weights and inputs stored channels-last (`TilingConfig(channels_last=True)`, `--channels-last` in
# the benchmark, the default of the solvers) oneDNN runs DRUNet's convolutions much faster. Files run
# with the same settings both ways give the speedup of each implementation:

# %%
display(Markdown(network_layout_sentence(prior_runs) or "No benchmark file was run both ways yet."))

# %% [markdown]
# A larger overlap buys agreement with work. The runs with several overlaps show the trade-off of
# each tiler; the sentences below find, for deepinv at overlap 32, the fastest distinv setting that
# agrees at least as well, and the region of the image (border band, tile seams, elsewhere) where
# the tilers differ: tiles cut at the signal border see what the untiled network sees, reflect-padded
# ones do not, and smooth blending only changes the seams.

# %%
for (source, size, ranks), sweep in overlap_sweeps(prior_runs):
    agreement_cost_figure(sweep, title=f"{source}: {size}², {ranks} ranks").show()
    display(Markdown(" ".join(tradeoff_sentences(sweep, "deepinv", 32)) or "No tiler matches deepinv's agreement."))
    display(Markdown(region_sentence(sweep, 32)))

# %% [markdown]
# ## Which rank runs which tile: static or dynamic schedule
#
# In the replicated layout any rank can run any tile. deepinv fixes the split in advance (tiles
# dealt round-robin), and so does distinv by default (contiguous runs of tiles of equal work,
# `schedule="static"`). With
# `TilingConfig(schedule="dynamic")` a rank claims the next batch of tiles, largest first, from a
# counter in the process group's store whenever it is ready for more, so a rank slowed down by its
# machine runs fewer tiles. The tilers differ by less than the drift of this machine between
# launches, so `python -m distinv.bench.schedule` runs distinv's two schedules and deepinv's
# `DistributedProcessing` in the same ranks, one call each in turn, each rank pinned to its own core:
# once on balanced ranks and once with a busy process sharing one rank's core (the noisy neighbour of
# a shared node). Inside one launch the ratios are also the least noisy comparison of distinv's
# static split with deepinv's. In the figures, a bar is the median time per call, its whiskers the
# fastest and the slowest call, its label the tiles each rank ran.

# %%
schedule_files = sorted(Path(schedule_dir).glob("*.json"))
for path in schedule_files:
    document = json.loads(path.read_text())
    display(Markdown(file_caption(document, path.stem) + schedule_sentence(document)))
    schedule_figure(document, title=path.stem).show()
if not schedule_files:
    display(Markdown(f"No schedule benchmark file in `{schedule_dir}` yet."))

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
# fewer tiles per rank than ranks' worth of work, some ranks idle.

# %%
models, reasons = fit_models(runs)
for source, reason in reasons.items():
    print(f"{source}: no model ({reason})")
link = CollectiveCost(latency_s=assumed_link_latency_us * 1e-6, seconds_per_byte=1e-9 / assumed_link_gbs)
predictions = predict_all(models, runs, model_image, model_patch, model_overlap, channels=model_channels, link=link)
model_constants(models)

# %% [markdown]
# The published figures below come from **another code on another machine**: the BenchOpt benchmark
# `numpex/benchmark_invprob_largescale` on Tesla V100 GPUs, for multi-frame super-resolution with 8
# operators and a full-size colour DRUNet. Only the *shape* of the curves is comparable with the model,
# not the times.

# %%
published = load_published_scaling()
display(Markdown(f"*Conditions of the published figures:* {published_conditions()}"))
figures.scaling_figure(predictions, published[published["problem"] == "sr8"],
                       title=f"Speedup to 64 ranks: model ({model_image}², patch {model_patch} + {model_overlap}) "
                             "vs published V100")

# %%
display(Markdown(prediction_lines(predictions, published, model_image)))

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
# A point that raises is stored with its error and the grid goes on; a rerun retries it.

# %%
if len(failed):
    display(failed_runs_table(failed))
else:
    display(Markdown("None."))

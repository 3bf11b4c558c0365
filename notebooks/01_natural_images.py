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
# # Natural images: multi-frame deblurring with a tiled learned prior
#
# A scene is photographed $K$ times, each time with a different motion blur: an anisotropic
# Gaussian kernel $h_k$ of widths $(s_1, s_2)$ rotated by $\theta_k = k\pi/K$. Optionally the
# camera also subsamples by a factor $s$ (super-resolution). With white noise of level
# $\sigma_n$ the measurements are
#
# $$
# y_k = A_k x + \sigma_n \varepsilon_k, \qquad A_k = S_s\,(h_k \ast \cdot\,), \qquad
# \varepsilon_k \sim \mathcal N(0, I), \quad k = 0, \dots, K-1,
# $$ (eq-mf-model)
#
# where the convolution is circular (the boundary model of most plug-and-play deblurring
# benchmarks; `padding="valid"`, what a real sensor sees, leaves a band of about the kernel radius
# along the border that only the kernel's tails observe, and every solver must then extrapolate
# it). Every single frame destroys the detail along its blur
# direction; together the $K$ directions cover the whole spectrum, which is why the frames are
# worth combining.
#
# We estimate $x$ by plug-and-play (PnP) optimisation: the data term
# $f(x) = \tfrac12\sum_k \lVert A_k x - y_k\rVert^2$ is handled exactly and the prior by a
# denoiser $D_\sigma$ (a small DRUNet trained on natural images). Two schemes are available:
#
# $$
# \text{PnP-PGD:}\quad x_{t+1} = D_{\sigma_t}\!\big(x_t - \gamma \nabla f(x_t)\big), \qquad \gamma = 1/\lVert A\rVert^2,
# $$ (eq-mf-pgd)
#
# $$
# \text{PnP-HQS:}\quad z_{t+1} = (A^\top A + \mu_t I)^{-1}(A^\top y + \mu_t x_t), \qquad x_{t+1} = D_{\sigma_t}(z_{t+1}),
# $$ (eq-mf-hqs)
#
# with $\mu_t = w\,\sigma_n^2/\sigma_t^2$ and a strength $\sigma_t$ that decreases geometrically.
# The linear system of {eq}`eq-mf-hqs` is solved by a few conjugate-gradient (CG) steps. The
# baseline replaces $D_\sigma$ by the proximal operator of total variation (TV), solved by ADMM with
# the same CG step.
#
# **Distribution.** Both pieces split over $R$ ranks without approximation on the data side:
# $\nabla f(x) = \sum_k A_k^\top(A_k x - y_k)$ and $A^\top A x = \sum_k A_k^\top A_k x$ are sums over
# operators, so rank $r$ builds and applies only its operators and **one all-reduce** per product
# combines them (deepinv's `DistributedStackedLinearPhysics`). The denoiser is applied to
# overlapping tiles dealt out to the ranks (the tiled prior), then the tiles are reassembled. The
# step size uses the exact $\lVert A\rVert^2$, a distributed power iteration. The iterate is
# replicated: every rank holds the whole image, so 1, 2 or $R$ ranks compute the same numbers.

# %%
from myst_nb import glue

import distinv
from distinv.book import setup_plotly
from distinv.plots.images import (
    image_row, measurements_figure, psnr_figure, results_table, run_label, summary_numbers, tile_zoom_figure,
    time_breakdown_figure,
)
from distinv.solvers import run_reconstruction, split_config

setup_plotly()

# %% tags=["parameters"]
size = 512  # image side N (pixels)
K = 4  # number of frames / blur operators
sigma_n = 0.01  # noise level (images in [0, 1])
blur_sigma = [3.0, 0.7]  # Gaussian widths (major, minor) in pixels
downsample = 1  # 1: deblurring, 2: super-resolution x2
image = "camera"  # scikit-image name or an image file (data_scripts/fetch_images.py)
channels = 1  # 1 gray, 3 color
solver = "pnp-hqs"  # "pnp-hqs" or "pnp-pgd"
iterations = 10  # outer iterations of every solver
nprocs = 2  # ranks (-1: one per GPU)
device = "cpu"  # "cpu", "cuda" or "auto"
patch = 256  # tile side of the prior
overlap = 32  # tile overlap
max_batch_size = 0  # tiles per denoiser call (0: all of a rank's tiles at once)
channels_last = True  # run the denoiser channels-last (weights and windows): faster on CPU
implementation = "distinv"  # tiled prior: "distinv" (smooth blending) or "deepinv" (crop)
schedule = "static"  # distinv: "static" split of the tiles, or "dynamic" (ranks claim tiles as they free up)
weights = "auto"  # denoiser name ("auto": the shipped small DRUNet), or "random" (wiring only)
weights_source = "shipped"  # "shipped", "download" or a path
compare_one_rank = True  # also run on 1 rank to compare (False: the comparisons below read nan)

# %%
n_ranks = distinv.resolve_nprocs(nprocs, device)
base_config = dict(
    size=size, K=K, sigma_n=sigma_n, blur_sigma=list(blur_sigma), downsample=downsample, image=image,
    channels=channels, iterations=iterations, device=device, patch=patch, overlap=overlap,
    max_batch_size=max_batch_size or None, channels_last=channels_last, implementation=implementation,
    schedule=schedule, weights=weights,
    weights_source=weights_source, progress=True,
)
runs: dict = {}

# %% [markdown]
# ## Reconstruction on several ranks
#
# `distinv.launch` starts the ranks from this cell; each one runs
# `distinv.solvers.run_reconstruction`, which builds its own operators and measurements, runs the
# solver and returns (on rank 0) the per-iteration history, the final metrics and small previews.

# %%
runs[run_label(solver, n_ranks)] = distinv.launch(
    run_reconstruction, dict(base_config, solver=solver), nprocs=n_ranks, timeout=3600)
main = runs[run_label(solver, n_ranks)]
problem = split_config(main["config"])[0]

# %% [markdown]
# ### The measurements
#
# The top row shows the $K$ kernels $h_k$ of {eq}`eq-mf-model`, the bottom row the measurements
# $y_k$ (downsampled for display): each is sharp across its blur direction only.

# %%
measurements_figure(main["measurement_previews"], [problem.kernel(k) for k in range(problem.K)]).show()

# %% [markdown]
# *Figure 1. Blur kernels (top) and noisy measurements (bottom), one column per frame.*

# %% [markdown]
# ### Reconstruction against ground truth
#
# The start point is the normalised back-projection $A^\top y \oslash A^\top \mathbf 1$: each pixel
# gets the average of the measurements that saw it, a blurred image. The zoom below is taken at full
# resolution around a corner where four tiles of the prior meet (dashed lines): a tiling artefact
# would show there as a seam.

# %%
image_row({"ground truth": main["x_true_preview"], "start (back-projection)": main["x_init_preview"],
           f"{solver} reconstruction": main["x_hat_preview"]}, height=380).show()
tile_zoom_figure(main["crops"], patch).show()

# %% [markdown]
# *Figure 2. Top: whole images (downsampled for display). Bottom: full-resolution crops around a
# tile corner; the dashed lines are the borders of the prior's tiles.*

# %% [markdown]
# ## One rank against several, PnP against TV
#
# The same problem on one rank must give the same iterates: the operators are only regrouped, and
# the tiles of the prior are the same tiles, processed on another rank. The TV baseline runs with
# the same number of outer iterations.

# %%
if compare_one_rank and n_ranks > 1:
    runs[run_label(solver, 1)] = distinv.launch(
        run_reconstruction, dict(base_config, solver=solver), nprocs=1, timeout=3600)
runs[run_label("tv", n_ranks)] = distinv.launch(
    run_reconstruction, dict(base_config, solver="tv"), nprocs=n_ranks, timeout=3600)
psnr_figure({label: result["history"] for label, result in runs.items()}).show()

# %% [markdown]
# *Figure 3. PSNR against iteration. The curves of the same solver on 1 and on several ranks lie
# on top of each other; PnP against TV shows what the learned prior adds.*

# %%
for name, value in summary_numbers(runs, solver, n_ranks, problem).items():
    glue(f"nat_{name}", value, display=False)

# %% [markdown]
# Over all iterations, the PSNR on {glue:text}`nat_ranks` ranks differs from the one on one rank by at most
# {glue:text}`nat_rank_gap_db:.2e` dB.

# %% [markdown]
# ## Where the time goes
#
# Each iteration splits into the data step (gradient or CG solve, with its all-reduces), the prior
# (tiled denoiser, with its all-reduce) and communication, which the ledger of
# `distinv.distributed.comm` measures separately.

# %%
time_breakdown_figure(runs).show()

# %% [markdown]
# *Figure 4. Median iteration split into compute of the data step, compute of the prior and
# communication (all ranks wait in the collectives, so rank 0's wall time is the job's).*

# %%
results_table(runs)

# %% [markdown]
# *Table 1. Final quality, median time per iteration and peak memory per rank during the iterations
# (CUDA max allocated on a GPU, resident set size on CPU; rank 0's full-resolution quality metrics are
# left out, they are not part of the solver). The start point and the pseudo-inverse (20 CG iterations on
# $A^\top A x = A^\top y$) show what the solvers gain.*

# %% [markdown]
# On this {glue:text}`nat_size`² problem ({glue:text}`nat_frames` frames, σ_n = {glue:text}`nat_sigma_n`),
# {glue:text}`nat_solver` with the learned prior reaches {glue:text}`nat_psnr:.2f` dB (SSIM
# {glue:text}`nat_ssim:.3f`) against {glue:text}`nat_psnr_tv:.2f` dB for TV: {glue:text}`nat_gain_tv:+.2f` dB.
# The back-projection start point is at {glue:text}`nat_psnr_init:.2f` dB and the pseudo-inverse at
# {glue:text}`nat_psnr_pinv:.2f` dB.
#
# On {glue:text}`nat_ranks` ranks the final PSNR differs from one rank by {glue:text}`nat_final_gap_db:.1e` dB,
# and an iteration takes {glue:text}`nat_t_iteration:.2f` s against {glue:text}`nat_t_iteration_one_rank:.2f` s
# on one rank: a speedup of {glue:text}`nat_speedup:.2f`× over one rank (below 1: slower), on
# {glue:text}`nat_device` with {glue:text}`nat_threads` thread(s) per rank.
#
# The ground truth is the central {glue:text}`nat_native_side`² square of the image
# {glue:text}`nat_image`, resized by a factor of {glue:text}`nat_resize_factor:.2f` (bicubic) to
# {glue:text}`nat_size`². A factor above 1 upsamples: the picture is then smoother than a photograph of that
# size, and the PSNRs above are higher than a real image of that size would give
# (`data_scripts/fetch_images.py` fetches one).

r"""Joseph's parallel-beam projector without a stored matrix: the weights of ASTRA's ``linear`` kernel,
recomputed view by view at every product.

The stored projector (:mod:`distinv.tomography.projector`) keeps :math:`M` and :math:`M^\top`: about 120 MB
per process at 256²/60 views, the same on every rank whatever its slab. Here a view's weights are
computed when they are needed and dropped after, so a rank holds only buffers the size of its slab
(and a chunk of the view's rays), and the per-rank memory falls with the slab.

For view :math:`\theta` (detector direction :math:`u = (\cos\theta, \sin\theta)`, cell :math:`j` at offset
:math:`t_j = j - D/2 + 1/2`, pixel :math:`(r, c)` centred at :math:`x = c - N/2 + 1/2`,
:math:`y = N/2 - r - 1/2`), the ray :math:`\{p : p\cdot u = t_j\}` is traversed along rows when
:math:`|\cos\theta| \ge |\sin\theta|` and along columns otherwise. On each row it crosses, it
meets the row's centre line at column coordinate :math:`c^* = (t_j - y\sin\theta)/\cos\theta + N/2 - 1/2`
and gives the two neighbouring pixels the weights :math:`(1 - \{c^*\})/|\cos\theta|` and
:math:`\{c^*\}/|\cos\theta|` (pixels outside the slice get nothing); columns likewise with
:math:`\sin`. These are ASTRA's weights: ``tests/test_tomography_joseph.py`` compares them with
``astra.projector.matrix`` entry by entry.
"""

from __future__ import annotations

import math
import warnings

import torch

__all__ = ["view_weights", "project_rows", "back_project_rows", "RAY_CHUNK"]

#: Traversal lines (rows or columns) whose weights are computed at once: bounds a product's transient
#: buffers to ``2 * RAY_CHUNK * detectors`` weights (and, for :math:`M^\top`, as many rows of the slab's
#: length), whatever the slice size.
RAY_CHUNK = 16


def view_weights(theta: float, size: int, detectors: int, lines: slice,
                 device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Pixel indexes and weights of the rays of one view on a range of traversal lines.

    :param float theta: the view's angle (radians).
    :param int size: slice side :math:`N`.
    :param int detectors: detector cells :math:`D`.
    :param slice lines: the traversal lines (rows or columns, whichever the view traverses) to cover.
    :param torch.device device: where the tensors live.
    :return: ``(index, weight)``, both of shape ``(2, L, D)`` for ``L`` lines: the flat (row-major) pixel
        index of the two pixels each ray meets on each line, and their weights (0 outside the slice,
        with index 0).

    >>> index, weight = view_weights(0.0, 4, 6, slice(0, 4), torch.device("cpu"))
    >>> weight.sum(dim=(0, 1)).tolist()  # a vertical ray through each detector cell
    [0.0, 4.0, 4.0, 4.0, 4.0, 0.0]
    """
    cos, sin = math.cos(theta), math.sin(theta)
    along_rows = abs(cos) >= abs(sin)
    line = torch.arange(size, dtype=torch.float64, device=device)[lines]
    t = torch.arange(detectors, dtype=torch.float64, device=device) - detectors / 2 + 0.5
    if along_rows:  # line = row r at y = N/2 - r - 1/2; position = column coordinate
        y = size / 2 - line - 0.5
        position = (t[None, :] - y[:, None] * sin) / cos + size / 2 - 0.5
        scale = 1.0 / abs(cos)
    else:  # line = column c at x = c - N/2 + 1/2; position = row coordinate
        x = line - size / 2 + 0.5
        position = size / 2 - 0.5 - (t[None, :] - x[:, None] * cos) / sin
        scale = 1.0 / abs(sin)
    first = torch.floor(position)
    fraction = position - first
    neighbours = torch.stack([first, first + 1])  # (2, L, D)
    weight = torch.stack([1 - fraction, fraction]) * scale
    inside = (neighbours >= 0) & (neighbours < size)
    neighbours = torch.where(inside, neighbours, torch.zeros_like(neighbours)).long()
    weight = torch.where(inside, weight, torch.zeros_like(weight))
    line_index = line.long()[None, :, None]
    index = line_index * size + neighbours if along_rows else neighbours * size + line_index
    return index, weight


def _chunks(size: int):
    for start in range(0, size, RAY_CHUNK):
        yield slice(start, min(start + RAY_CHUNK, size))


def _view_matrix(theta: float, size: int, detectors: int, lines: slice, dtype: torch.dtype,
                 device: torch.device) -> torch.Tensor:
    """The view's rows of :math:`M` restricted to some traversal lines, as a torch CSR tensor ``(D, N²)``: each
    row holds its ray's weights on those lines (the zero weights of pixels outside the slice included, at
    index 0)."""
    index, weight = view_weights(theta, size, detectors, lines, device)
    columns = index.permute(2, 0, 1).reshape(-1)
    values = weight.permute(2, 0, 1).reshape(-1).to(dtype)
    rows = torch.arange(detectors + 1, device=device) * (index.shape[0] * index.shape[1])
    with warnings.catch_warnings():  # "sparse CSR support is in beta"
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(rows, columns, values, size=(detectors, size * size))


def project_rows(columns: torch.Tensor, angles, size: int, detectors: int) -> torch.Tensor:
    r"""Forward projection of slices stored as columns: :math:`Y = M X`, the sparse rows of
    :data:`RAY_CHUNK` traversal lines of one view at a time.

    :param torch.Tensor columns: :math:`X`, ``(N², S)`` (one slice per column).
    :param angles: the views' angles (radians), in the order of the output rows.
    :param int size: :math:`N`.
    :param int detectors: :math:`D`.
    :return: ``(len(angles) * D, S)``, view-major then detector.
    """
    out = columns.new_zeros(len(angles), detectors, columns.shape[1])
    for v, theta in enumerate(angles):
        for lines in _chunks(size):
            out[v] += _view_matrix(float(theta), size, detectors, lines, columns.dtype, columns.device) @ columns
    return out.view(-1, columns.shape[1])


def back_project_rows(rows: torch.Tensor, angles, size: int, detectors: int) -> torch.Tensor:
    r"""The exact transpose of :func:`project_rows`: :math:`X = M^\top Y`.

    :param torch.Tensor rows: :math:`Y`, ``(len(angles) * D, S)``.
    :return: ``(N², S)``.
    """
    sinogram = rows.view(len(angles), detectors, rows.shape[1])
    out = rows.new_zeros(size * size, rows.shape[1])
    for v, theta in enumerate(angles):
        for lines in _chunks(size):
            index, weight = view_weights(float(theta), size, detectors, lines, rows.device)
            source = weight.to(rows.dtype)[..., None] * sinogram[v][None, None]  # (2, L, D, S)
            out.index_add_(0, index.reshape(-1), source.reshape(-1, rows.shape[1]))
    return out

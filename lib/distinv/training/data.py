r"""Training data of the unrolled network: photos, random crops, and the noise of each step.

Each photo is prepared as :func:`distinv.problems.images.ground_truth` prepares the chapter's image (its
central square resized to ``side``², bicubic, in ``[0, 1]``, ITU-R 709 luma for gray), so training crops
have the statistics of the images the network is evaluated on. Every random draw of step ``s`` comes
from a generator seeded by ``(seed, s)``: every rank draws the same crops without communicating, and a
resumed run draws what the interrupted one would have drawn.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["load_photo", "CropSampler", "step_seed"]

_LUMA = (0.2125, 0.7154, 0.0721)


def step_seed(seed: int, step: int, stream: int = 0) -> int:
    """The seed of random stream ``stream`` (0: crops; ``1 + k``: noise of frame ``k``) at step ``step``.

    >>> step_seed(0, 3, 2) != step_seed(0, 3, 1) != step_seed(0, 2, 1)
    True
    """
    return ((int(seed) * 1_000_003 + int(step)) * 1_009 + int(stream)) % (2 ** 63 - 1)


def _skimage_photo(name: str) -> np.ndarray:
    import skimage.data

    if name == "motorcycle":
        return skimage.data.stereo_motorcycle()[0]
    if not hasattr(skimage.data, name) or name.startswith("_"):
        raise ValueError(f"images must name photos of skimage.data, got {name!r}")
    return getattr(skimage.data, name)()


def load_photo(name: str, channels: int, side: int) -> torch.Tensor:
    """A photo of ``skimage.data`` as a ``(1, channels, side, side)`` float32 tensor in ``[0, 1]``.

    :param str name: e.g. ``"astronaut"``; ``"motorcycle"`` is ``stereo_motorcycle()[0]``.
    :param int channels: 1 (luma) or 3 (gray photos are repeated).
    :param int side: side after resizing the central square.

    >>> load_photo("camera", 1, 64).shape
    torch.Size([1, 1, 64, 64])
    """
    import skimage.util

    array = skimage.util.img_as_float32(_skimage_photo(name))
    if array.ndim == 3 and array.shape[2] == 4:
        array = array[..., :3]
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=2)
    x = torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1)[None].float()
    if channels == 1:
        x = _LUMA[0] * x[:, 0:1] + _LUMA[1] * x[:, 1:2] + _LUMA[2] * x[:, 2:3]
    square = min(x.shape[-2:])
    top, left = (x.shape[-2] - square) // 2, (x.shape[-1] - square) // 2
    x = x[..., top:top + square, left:left + square]
    if square != side:
        x = torch.nn.functional.interpolate(x, size=(side, side), mode="bicubic", align_corners=False,
                                            antialias=side < square)
    return x.clamp_(0.0, 1.0).contiguous()


class CropSampler:
    """Random crops (with flips and quarter turns) of prepared photos, the same on every rank.

    :param list photos: ``(1, C, S, S)`` tensors (:func:`load_photo`).
    :param int crop: crop side, ``<= S``.
    :param int seed: base seed; :meth:`sample` of step ``s`` uses :func:`step_seed` ``(seed, s)``.

    >>> sampler = CropSampler([torch.rand(1, 1, 32, 32)], crop=16, seed=0)
    >>> torch.equal(sampler.sample(5, batch=2), sampler.sample(5, batch=2)), sampler.sample(5, batch=2).shape
    (True, torch.Size([2, 1, 16, 16]))
    """

    def __init__(self, photos: list[torch.Tensor], crop: int, seed: int):
        if not photos:
            raise ValueError("photos must hold at least one image")
        side = min(min(p.shape[-2:]) for p in photos)
        if crop > side:
            raise ValueError(f"crop must be <= the photos' side {side}, got {crop}")
        self.photos, self.crop, self.seed = photos, crop, seed

    def sample(self, step: int, batch: int = 1) -> torch.Tensor:
        """``batch`` crops of step ``step``: ``(batch, C, crop, crop)``."""
        generator = torch.Generator().manual_seed(step_seed(self.seed, step, 0))

        def draw(high: int) -> int:
            return int(torch.randint(high, (1,), generator=generator))

        crops = []
        for _ in range(batch):
            photo = self.photos[draw(len(self.photos))][0]
            top, left = draw(photo.shape[-2] - self.crop + 1), draw(photo.shape[-1] - self.crop + 1)
            crop = photo[:, top:top + self.crop, left:left + self.crop]
            if draw(2):
                crop = crop.flip(-1)
            crops.append(torch.rot90(crop, draw(4), dims=(-2, -1)))
        return torch.stack(crops).contiguous()

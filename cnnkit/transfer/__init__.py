"""Transfer learning: the four regimes of reusing a pretrained CNN, and an advisor that
picks one from the data.

    cnnkit train --data imgs/ --model efficientnet_lite0 --pretrained --regime features
    cnnkit train --data imgs/ --model efficientnet_lite0 --pretrained --regime truncate --cut stage4
    cnnkit train --data imgs/ --model mobilenet_v2 --pretrained --regime finetune --warmup-epochs 2
    cnnkit train --data imgs/ --model efficientnet_lite0 --pretrained --regime auto

:mod:`cnnkit.transfer.regimes` says what each regime freezes, :mod:`cnnkit.transfer.advisor`
how ``auto`` decides (and its thresholds), :mod:`cnnkit.transfer.build` how a
``TrainConfig`` becomes the network (also for rebuilding a run for inference).
"""

from cnnkit.transfer.advisor import Advice, advise, measure_similarity
from cnnkit.transfer.build import build_network, network_for_run, pretrained_normalization, resolve_pretrained
from cnnkit.transfer.regimes import TransferNet, TransferPlan, backbone_groups, check_cut, trainable_by_group

__all__ = [
    "Advice",
    "TransferNet",
    "TransferPlan",
    "advise",
    "backbone_groups",
    "build_network",
    "check_cut",
    "measure_similarity",
    "network_for_run",
    "pretrained_normalization",
    "resolve_pretrained",
    "trainable_by_group",
]

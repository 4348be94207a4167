"""The classic half of the zoo against its sources: the seeds' Keras code and printed
summaries, the LeNet-5 paper's Table I, torchvision's published MACs and layer names, and
the real ``cnnkit`` command line.

The Keras side is never hard-coded: tables are parsed from the seed files, or computed
from the seed's Keras code with Keras's own shape and parameter formulas
(:func:`keras_table`), and that interpreter is itself checked against the one Keras
summary the seeds print (seed 001).
"""

from __future__ import annotations

import ast
import math
import re
import subprocess
import sys

import pytest
import torch
import torch.nn as nn
from conftest import need

import cnnkit
from cnnkit.models.lenet import C3_TABLE
from cnnkit.models.maxout import MaxoutConv2d, MaxoutLinear
from cnnkit.summary import count_params


def seed_text(name: str) -> str:
    """A seed document from ../shared/seeds (skip without it; a failure under CI)."""
    return (need("seeds") / name).read_text(encoding="utf-8")


# cnnkit row type -> Keras layer class; activation rows have no Keras row (fused into the layer)
KERAS_TYPE = {
    "Conv2d": "Conv2D",
    "MaxPool2d": "MaxPooling2D",
    "ZeroPad2d": "ZeroPadding2D",
    "Flatten": "Flatten",
    "Linear": "Dense",
    "Dropout": "Dropout",
}
ACTIVATIONS = {"ReLU", "PReLU", "Sigmoid", "Tanh", "Softmax"}

Row = tuple[str, tuple[int, ...], int]  # (Keras type, output shape without batch, params)


# --- Keras side ----------------------------------------------------------------------------------


def parse_keras_summary(lines: list[str]) -> tuple[list[Row], int]:
    """Rows and total of a printed ``model.summary()`` (types may be cut, e.g. 'MaxPooling2')."""
    rows: list[Row] = []
    total = None
    for line in lines:
        # Keras cuts long type names and their ')' to the column width: "(MaxPooling2 (None, ..."
        m = re.match(r"^\s*\w+ \((\w+)\)?\s+\(None, ([\d, ]+)\)\s+([\d,]+)\s*$", line)
        if m:
            kind = next(k for k in KERAS_TYPE.values() if k.startswith(m.group(1)))
            shape = tuple(int(d) for d in m.group(2).split(","))
            rows.append((kind, shape, int(m.group(3).replace(",", ""))))
        elif line.strip().startswith("Total params:"):
            total = int(line.split(":")[1].replace(",", ""))
    assert total is not None and rows
    return rows, total


def model_add_calls(lines: list[str]) -> list[ast.Call]:
    """The layer constructors of every ``model.add(...)`` line (seed 004 numbers its lines)."""
    calls = []
    for line in lines:
        m = re.match(r"^\s*(?:\d+\.\s*)?model\.add\((.*)\)\s*$", line)
        if m:
            calls.append(ast.parse(m.group(1), mode="eval").body)
    return calls


def keras_table(calls: list[ast.Call], names: dict[str, object]) -> list[Row]:
    """Shapes and params by Keras's formulas (channels last), for Keras 1 and 2 spellings:
    conv params = K*F*F*D_in + K; 'same' -> ceil(H/S), 'valid' -> ceil((H-F+1)/S);
    pooling 'valid' -> floor((H-P)/S) + 1."""

    def value(node: ast.AST) -> object:
        return names[node.id] if isinstance(node, ast.Name) else ast.literal_eval(node)

    rows: list[Row] = []
    shape: tuple[int, ...] = ()
    for call in calls:
        kind = call.func.id
        args = [value(a) for a in call.args]
        kw = {k.arg: value(k.value) for k in call.keywords}
        shape = tuple(kw.get("input_shape", shape))
        params = 0
        if kind in ("Conv2D", "Convolution2D"):
            kind = "Conv2D"
            filters = args[0] if args else kw["filters"]
            if len(args) >= 3:  # Keras 1: Convolution2D(nb_filter, nb_row, nb_col)
                kernel = (args[1], args[2])
            else:
                kernel = args[1] if len(args) == 2 else kw["kernel_size"]  # Keras 2
            kernel = (kernel, kernel) if isinstance(kernel, int) else tuple(kernel)
            stride = kw.get("strides", kw.get("subsample", 1))
            stride = (stride, stride) if isinstance(stride, int) else tuple(stride)
            padding = kw.get("padding", kw.get("border_mode", "valid"))
            h, w, depth = shape
            if padding == "same":
                h, w = math.ceil(h / stride[0]), math.ceil(w / stride[1])
            else:
                h, w = math.ceil((h - kernel[0] + 1) / stride[0]), math.ceil((w - kernel[1] + 1) / stride[1])
            params = filters * kernel[0] * kernel[1] * depth + filters
            shape = (h, w, filters)
        elif kind == "MaxPooling2D":
            pool = args[0] if args else kw.get("pool_size", 2)
            pool = (pool, pool) if isinstance(pool, int) else tuple(pool)
            stride = args[1] if len(args) > 1 else kw.get("strides", pool)
            stride = (stride, stride) if isinstance(stride, int) else tuple(stride)
            h, w, depth = shape
            shape = ((h - pool[0]) // stride[0] + 1, (w - pool[1]) // stride[1] + 1, depth)
        elif kind == "ZeroPadding2D":
            pad = args[0] if args else kw.get("padding", 1)
            pad = (pad, pad) if isinstance(pad, int) else tuple(pad)
            shape = (shape[0] + 2 * pad[0], shape[1] + 2 * pad[1], shape[2])
        elif kind == "Flatten":
            shape = (math.prod(shape),)
        elif kind == "Dense":
            params = shape[0] * args[0] + args[0]
            shape = (args[0],)
        elif kind == "Activation":
            continue
        elif kind != "Dropout":
            raise AssertionError(f"no Keras formula for {kind}")
        rows.append((kind, shape, params))
    return rows


def seed_lines(name: str, start: str, stop: str) -> list[str]:
    """Lines of a seed file from the first line containing ``start`` to the next with ``stop``."""
    lines = seed_text(name).splitlines()
    first = next(i for i, line in enumerate(lines) if start in line)
    last = next(i for i in range(first + 1, len(lines)) if stop in lines[i])
    return lines[first : last + 1]


# --- cnnkit side ---------------------------------------------------------------------------------


def cnnkit_rows(model: nn.Module, input_size: tuple[int, ...], drop: set[str] = frozenset()) -> list[Row]:
    """Our summary as Keras would print it: activation rows dropped, shapes channels-last."""
    rows = []
    for r in cnnkit.summary(model, input_size).rows:
        if r.type in ACTIVATIONS or r.type in drop:
            continue
        shape = r.output_shape[1:]
        if len(shape) == 3:
            shape = (shape[1], shape[2], shape[0])
        rows.append((KERAS_TYPE[r.type], tuple(shape), r.params))
    return rows


# --- Keras tables ----------------------------------------------------------------------------------


def test_seed_cifar_cnn_matches_the_printed_keras_summary() -> None:
    printed, total = parse_keras_summary(
        seed_lines("001-cnn-notes-keras-layers-transfer.txt", "sequential_4", "Total")
    )
    assert total == 528_054 and len(printed) == 9
    model = cnnkit.create_model("seed_cifar_cnn")
    # Keras pads inside its 'same' conv; our explicit ZeroPad2d rows have no Keras counterpart
    assert cnnkit_rows(model, (3, 32, 32), drop={"ZeroPad2d"}) == printed
    assert count_params(model) == total


def test_keras_formulas_reproduce_the_printed_summary() -> None:
    # the interpreter used for LeNet and VGG below, checked against real Keras output
    lines = seed_text("001-cnn-notes-keras-layers-transfer.txt").splitlines()
    table = next(i for i, line in enumerate(lines) if "sequential_4" in line)
    code = lines[max(i for i in range(table) if "model = Sequential()" in lines[i]) : table]
    printed, _ = parse_keras_summary(
        seed_lines("001-cnn-notes-keras-layers-transfer.txt", "sequential_4", "Total")
    )
    assert keras_table(model_add_calls(code), {}) == printed


def test_lenet5_matches_the_seed_keras_code_and_hand_count() -> None:
    code = seed_lines(
        "002-cnn-architectures-lenet-to-resnet.txt", "# Building the Model Architecture", "compile"
    )
    expected = keras_table(model_add_calls(code), {})
    assert [kind for kind, *_ in expected] == [
        "Conv2D", "MaxPooling2D", "Conv2D", "MaxPooling2D", "Flatten", "Dense", "Dense", "Dense"
    ]  # fmt: skip
    assert cnnkit_rows(cnnkit.create_model("lenet5"), (1, 28, 28)) == expected
    # and the reference README's hand count "(156 + 2,416 + 30,840 + 10,164 + 850)"
    readme = need("reference", "README.md").read_text(encoding="utf-8")
    hand = re.search(r"\((156 \+ [\d,+ ]+)\)", readme).group(1)
    assert [p for *_, p in expected if p] == [int(t.replace(",", "")) for t in hand.split(" + ")]


@pytest.mark.parametrize(
    "input_hwc,num_classes",
    [
        ((32, 32, 3), 100),  # the seed's own use: CIFAR-100, s = X_train.shape[1:]
        pytest.param((224, 224, 3), 1000, marks=pytest.mark.slow),
    ],
)
def test_keras_vgg16_matches_the_seed_build_vgg_16(input_hwc: tuple[int, int, int], num_classes: int) -> None:
    code = seed_lines(
        "004-deep-networks-chapter-lenet-to-inception-v4.txt", "def build_VGG_16", "return model"
    )
    calls = model_add_calls(code)
    calls[-1] = ast.parse(f"Dense({num_classes}, activation='softmax')", mode="eval").body
    expected = keras_table(calls, {"fm": 3, "s": input_hwc})
    assert len(expected) == 13 * 2 + 5 + 6  # pad+conv x13, 5 pools, flatten + 3 dense + 2 dropout
    h, w, c = input_hwc
    model = cnnkit.create_model("keras_vgg16", num_classes=num_classes, input_size=(c, h, w))
    assert cnnkit_rows(model, (c, h, w)) == expected
    assert count_params(model) == sum(p for *_, p in expected)


# --- MACs against torchvision's published figures ------------------------------------------------


def build_on_meta(name: str, **kwargs) -> nn.Module:
    """The big nets built on PyTorch's meta device: real modules and shapes, no memory or init
    time; enough for names, counts, shapes and MACs (their real forward is in test_zoo.py)."""
    with torch.device("meta"):
        return cnnkit.create_model(name, **kwargs)


@pytest.mark.parametrize("name,published", [("alexnet", 0.714e9), ("vgg16", 15.47e9), ("vgg11", 7.61e9)])
def test_macs_at_224_match_torchvision(name: str, published: float) -> None:
    macs = cnnkit.summary(build_on_meta(name), (3, 224, 224), device="meta").total_macs
    assert abs(macs - published) / published < 0.01, macs


def test_vgg_and_alexnet_use_torchvision_parameter_names() -> None:
    convs = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]
    expected = [f"features.{i}.{p}" for i in convs for p in ("weight", "bias")]
    expected += [f"classifier.{i}.{p}" for i in (0, 3, 6) for p in ("weight", "bias")]
    vgg = build_on_meta("vgg16", num_classes=2)
    assert list(vgg.state_dict()) == expected
    alex = build_on_meta("alexnet", num_classes=2)
    expected = [f"features.{i}.{p}" for i in (0, 3, 6, 8, 10) for p in ("weight", "bias")]
    expected += [f"classifier.{i}.{p}" for i in (1, 4, 6) for p in ("weight", "bias")]
    assert list(alex.state_dict()) == expected


def test_alexnet_paper_shapes_and_two_tower_count() -> None:
    model = build_on_meta("alexnet_paper", num_classes=10)
    rows = {r.name: r for r in cnnkit.summary(model, device="meta").rows}
    assert rows["features.0"].output_shape == (None, 96, 55, 55)  # Figure 2's 55x55 needs 227 input
    assert rows["features.14"].output_shape == (None, 256, 6, 6)
    assert sum(isinstance(m, nn.LocalResponseNorm) for m in model.modules()) == 2
    towers = build_on_meta("alexnet_paper", two_tower=True)
    assert [m.groups for m in towers.features if isinstance(m, nn.Conv2d)] == [1, 2, 1, 2, 2]
    assert count_params(towers) == 60_965_224  # BVLC Caffe AlexNet


# --- the command line ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv,needle",
    [(["summary", "vgg16", "--input-size", "3x8x8"], "vgg16"), (["summary", "vgg17"], "unknown model")],
)
def test_cli_errors_are_one_line_and_exit_2(argv: list[str], needle: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "cnnkit", *argv], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert needle in proc.stderr and "Traceback" not in proc.stderr


# --- LeNet-5 as in the paper -----------------------------------------------------------------------

# Table I of LeCun et al. 1998 as printed: rows = S2 maps 0-5, columns = C3 maps 0-15.
PAPER_TABLE_I = """
X...XXX..XXXX.XX
XX...XXX..XXXX.X
XXX...XXX..X.XXX
.XXX..XXXX..X.XX
..XXX..XXXX.XX.X
...XXX..XXXX.XXX
"""


def test_lenet5_paper_c3_is_table_i_with_60_connections() -> None:
    grid = PAPER_TABLE_I.split()
    from_paper = tuple(tuple(i for i in range(6) if grid[i][j] == "X") for j in range(16))
    assert tuple(tuple(sorted(row)) for row in C3_TABLE) == from_paper
    model = cnnkit.create_model("lenet5_paper")
    assert model.c3.num_connections == 60
    assert count_params(model.c3) == 1_516
    assert count_params(model.s2) == 12 and count_params(model.s4) == 32
    assert count_params(model) == 60_840


def test_lenet5_paper_c3_maps_see_only_their_table_inputs() -> None:
    torch.manual_seed(0)
    c3 = cnnkit.create_model("lenet5_paper").c3
    x = torch.randn(1, 6, 14, 14, requires_grad=True)
    out = c3(x)
    for j, inputs in enumerate(C3_TABLE):
        (grad,) = torch.autograd.grad(out[0, j].sum(), x, retain_graph=True)
        touched = {i for i in range(6) if grad[0, i].abs().sum() > 0}
        assert touched == set(inputs), j


def test_lenet5_paper_logits_are_negative_rbf_distances() -> None:
    torch.manual_seed(0)
    model = cnnkit.create_model("lenet5_paper").eval()
    x = torch.randn(4, 1, 32, 32)
    with torch.no_grad():
        f6 = model.forward_head(model.forward_features(x), pre_logits=True)
        logits = model(x)
    assert f6.abs().max() <= 1.7159  # scaled tanh: A tanh(S a) stays within +-A
    expected = -(torch.cdist(f6, model.rbf.weight) ** 2)
    torch.testing.assert_close(logits, expected, rtol=1e-4, atol=1e-4)
    assert not model.rbf.weight.requires_grad  # the paper keeps the codes fixed
    assert set(model.rbf.weight.unique().tolist()) <= {-1.0, 1.0}


# --- units -----------------------------------------------------------------------------------------


def test_maxout_units_take_the_max_of_their_pieces() -> None:
    torch.manual_seed(0)
    dense = MaxoutLinear(6, 4, pieces=3)
    x = torch.randn(5, 6)
    pieces = dense.linear(x).view(5, 4, 3)
    torch.testing.assert_close(dense(x), pieces.max(-1).values)
    conv = MaxoutConv2d(3, 8, 3, pieces=2, padding=1)
    img = torch.randn(2, 3, 9, 9)
    maps = conv.conv(img)
    torch.testing.assert_close(conv(img), torch.maximum(maps[:, 0::2], maps[:, 1::2]))


def test_highway_layer_carries_input_when_gate_is_closed() -> None:
    from cnnkit.models.highway import HighwayConv2d, HighwayLinear

    torch.manual_seed(0)
    x = torch.randn(3, 16)
    closed = HighwayLinear(16, gate_bias=-50.0)
    torch.testing.assert_close(closed(x), x)
    img = torch.randn(2, 8, 6, 6)
    opened = HighwayConv2d(8, gate_bias=50.0)
    torch.testing.assert_close(opened(img), opened.act(opened.transform(img)))
    assert torch.sigmoid(HighwayLinear(16).gate.bias).max() < 0.2  # default bias -2: mostly carry


def test_spp_gives_63_bins_per_map_at_any_size() -> None:
    from cnnkit.models.prelu_net import SpatialPyramidPool

    spp = SpatialPyramidPool((7, 3, 2, 1))
    for side in (7, 10, 13):
        x = torch.randn(2, 5, side, side)
        out = spp(x)
        assert out.shape == (2, 5 * 63)
        torch.testing.assert_close(out[:, -5:], x.amax(dim=(2, 3)))  # the 1x1 level is a global max
    x = torch.randn(1, 5, 7, 7)
    torch.testing.assert_close(spp(x)[:, : 5 * 49], x.flatten(1))  # 7 bins on a 7x7 map: identity


@pytest.mark.parametrize(
    "name", ["seed_cifar_cnn", "shallow_cnn", "mini_vgg", "nin", "highway_cnn", "highway_mlp"]
)
def test_prelu_is_an_activation_option(name: str) -> None:
    relu = cnnkit.create_model(name, num_classes=10)
    prelu = cnnkit.create_model(name, num_classes=10, act="prelu")
    slopes = [m.num_parameters for m in prelu.modules() if isinstance(m, nn.PReLU)]
    assert slopes and not any(isinstance(m, nn.ReLU) for m in prelu.modules())
    assert count_params(prelu) == count_params(relu) + sum(slopes)
    info = cnnkit.model_info(name)
    with torch.no_grad():
        assert prelu.eval()(torch.randn(2, *info.input_size)).shape == (2, 10)


def test_prelu_net_a_follows_table_3() -> None:
    from cnnkit.models.prelu_net import PReLUNet

    model = build_on_meta("prelu_net_a", num_classes=10)
    convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [96] + [256] * 5 + [512] * 10
    sides = [r.output_shape[-1] for r in cnnkit.summary(model, device="meta").rows if r.type == "MaxPool2d"]
    assert sides == [38, 19, 10]  # Table 3's map sizes at 224
    assert model.classifier[0].in_features == 512 * 63
    assert sum(m.num_parameters for m in model.modules() if isinstance(m, nn.PReLU)) == 14_688
    # He init (section 2.2) on a narrow real instance: std = sqrt(2 / (9 c_in)), slopes 0.25
    torch.manual_seed(0)
    small = PReLUNet(((64, 2), (96, 2)), num_classes=10)
    for conv in [m for m in small.features if isinstance(m, nn.Conv2d)][1:]:
        w = conv.weight
        assert abs(w.std().item() / math.sqrt(2 / (9 * w.shape[1])) - 1) < 0.05
    assert all(torch.all(m.weight == 0.25) for m in small.modules() if isinstance(m, nn.PReLU))

"""GoogLeNet family: Inception v1 (Szegedy et al. 2014) and ``tiny_googlenet``.

GoogLeNet follows Caffe's ``bvlc_googlenet`` deploy graph: ReLU after every conv, LRN
after pool1 and after conv2, nine inception modules, 7x7 average pool and one fully
connected layer; no BatchNormalization and no auxiliary classifiers (they only exist
in training). Caffe pools with ceil-mode output sizes (112 -> 56 -> 28 -> 14 -> 7); the
builder reproduces that with one extra end pad, which works on every opset.
"""

from __future__ import annotations

from tensorforge.models._builder import GraphBuilder

# name: (1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool proj) -- Table 1 of the paper.
_INCEPTION = {
    "3a": (64, 96, 128, 16, 32, 32),
    "3b": (128, 128, 192, 32, 96, 64),
    "4a": (192, 96, 208, 16, 48, 64),
    "4b": (160, 112, 224, 24, 64, 64),
    "4c": (128, 128, 256, 24, 64, 64),
    "4d": (112, 144, 288, 32, 64, 64),
    "4e": (256, 160, 320, 32, 128, 128),
    "5a": (256, 160, 320, 32, 128, 128),
    "5b": (384, 192, 384, 48, 128, 128),
}


def _conv_relu(b: GraphBuilder, x: str, cout: int, k: int, name: str, stride: int = 1) -> str:
    return b.relu(b.conv(x, cout, k, stride=stride, name=name), name=f"{name}.relu")


def inception(b: GraphBuilder, x: str, cfg: tuple[int, ...], name: str) -> str:
    """One Inception module: four parallel branches concatenated on channels."""
    c1, c3r, c3, c5r, c5, cp = cfg
    b1 = _conv_relu(b, x, c1, 1, f"{name}.1x1")
    b2 = _conv_relu(b, _conv_relu(b, x, c3r, 1, f"{name}.3x3_reduce"), c3, 3, f"{name}.3x3")
    b3 = _conv_relu(b, _conv_relu(b, x, c5r, 1, f"{name}.5x5_reduce"), c5, 5, f"{name}.5x5")
    b4 = _conv_relu(b, b.maxpool(x, 3, 1, pad=1, name=f"{name}.pool"), cp, 1, f"{name}.pool_proj")
    return b.concat([b1, b2, b3, b4], name=f"{name}.output")


def googlenet(b: GraphBuilder, num_classes: int) -> str:
    """GoogLeNet (Inception v1) on a 3x224x224 input; returns the logits tensor."""
    x = _conv_relu(b, b.input, 64, 7, "conv1", stride=2)  # 112
    x = b.lrn(b.maxpool(x, 3, 2, ceil_pad=1, name="pool1"), name="norm1")  # 56
    x = _conv_relu(b, x, 64, 1, "conv2_reduce")
    x = _conv_relu(b, x, 192, 3, "conv2")
    x = b.maxpool(b.lrn(x, name="norm2"), 3, 2, ceil_pad=1, name="pool2")  # 28
    for key in ("3a", "3b", "4a", "4b", "4c", "4d", "4e", "5a", "5b"):
        if key in ("4a", "5a"):
            x = b.maxpool(x, 3, 2, ceil_pad=1, name=f"pool_before_{key}")  # 14, 7
        x = inception(b, x, _INCEPTION[key], f"inception_{key}")
    x = b.flatten(b.avgpool(x, 7, 1, name="pool5"), name="flatten")
    return b.gemm(x, num_classes, gain=1.0, name="fc")


def tiny_googlenet(b: GraphBuilder, num_classes: int) -> str:
    """Strided 5x5 stem, ceil-mode max pool, LRN, one inception module, Gemm (32x32 in)."""
    x = _conv_relu(b, b.input, 16, 5, "stem", stride=2)  # 16
    x = b.lrn(b.maxpool(x, 3, 2, ceil_pad=1, name="pool1"), name="norm1")  # 8
    x = inception(b, x, (8, 8, 12, 4, 4, 4), "inception")
    x = b.flatten(b.global_avgpool(x, name="avgpool"), name="flatten")
    return b.gemm(x, num_classes, gain=1.0, name="fc")

"""MobileNet family: MobileNetV2 (Sandler et al. 2018) and ``tiny_mobilenet``.

MobileNetV2 at width 1.0 as torchvision builds it: a 3x3 stride-2 stem, 17 inverted
residual blocks (1x1 expand, 3x3 depthwise, linear 1x1 project; residual add when the
stride is 1 and channels match), a 1x1 conv to 1280 channels, global average pool and a
classifier. Every conv has BatchNormalization; ReLU6 is ``Clip(0, 6)``.
"""

from __future__ import annotations

from tensorforge.models._builder import GraphBuilder

# (expansion t, output channels c, repeats n, first stride s) -- Table 2 of the paper.
_MOBILENET_V2 = (
    (1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
    (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1),
)


def inverted_residual(b: GraphBuilder, x: str, cout: int, stride: int, t: int, name: str) -> str:
    """Expand (if t > 1), depthwise 3x3, linear projection, residual add when shapes match."""
    cin = b.channels(x)
    hidden = cin * t
    y = x
    if t != 1:
        y = b.conv_bn(y, hidden, 1, act="relu6", name=f"{name}.expand")
    y = b.conv_bn(y, hidden, 3, stride=stride, group=hidden, act="relu6", name=f"{name}.dw")
    use_res = stride == 1 and cin == cout
    y = b.conv_bn(y, cout, 1, act=None, gamma_scale=0.5 if use_res else 1.0,
                  name=f"{name}.project")
    return b.add(y, x, name=f"{name}.add") if use_res else y


def _body(b: GraphBuilder, stem: int, settings: tuple[tuple[int, int, int, int], ...],
          last: int, num_classes: int) -> str:
    x = b.conv_bn(b.input, stem, 3, stride=2, act="relu6", name="features.0")
    i = 1
    for t, c, n, s in settings:
        for j in range(n):
            x = inverted_residual(b, x, c, s if j == 0 else 1, t, f"features.{i}")
            i += 1
    x = b.conv_bn(x, last, 1, act="relu6", name=f"features.{i}")
    x = b.flatten(b.global_avgpool(x, name="avgpool"), name="flatten")
    return b.gemm(x, num_classes, gain=1.0, name="classifier")


def mobilenet_v2(b: GraphBuilder, num_classes: int) -> str:
    """MobileNetV2 (width 1.0) on a 3x224x224 input; returns the logits tensor."""
    return _body(b, 32, _MOBILENET_V2, 1280, num_classes)


def tiny_mobilenet(b: GraphBuilder, num_classes: int) -> str:
    """Stem, three inverted-residual blocks (two with residual adds), 1x1 head (32x32 in)."""
    return _body(b, 16, ((1, 16, 1, 1), (4, 24, 2, 2)), 64, num_classes)

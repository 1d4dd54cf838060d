"""ResNet family: ResNet-50 v1.5 and the ``tiny_cnn`` test network.

ResNet-50 v1.5 (He et al. 2015, "Deep Residual Learning for Image Recognition", with
torchvision's v1.5 change: the stride-2 of a down-sampling bottleneck sits on the 3x3
conv, not the first 1x1). Convolutions carry no bias; every conv is followed by a
BatchNormalization with random, non-identity statistics, so a BN-folding pass has work.
"""

from __future__ import annotations

from tensorforge.models._builder import GraphBuilder

_LAYERS = (3, 4, 6, 3)
_WIDTHS = (64, 128, 256, 512)
_EXPANSION = 4


def _bottleneck(b: GraphBuilder, x: str, width: int, stride: int, name: str) -> str:
    out = width * _EXPANSION
    y = b.conv_bn(x, width, 1, name=f"{name}.conv1")
    y = b.conv_bn(y, width, 3, stride=stride, name=f"{name}.conv2")
    # Small gamma on the branch's last BN keeps the sum of 16 residual adds O(1).
    y = b.conv_bn(y, out, 1, act=None, gamma_scale=0.3, name=f"{name}.conv3")
    if stride != 1 or b.channels(x) != out:
        x = b.conv_bn(x, out, 1, stride=stride, act=None, name=f"{name}.downsample")
    return b.relu(b.add(y, x, name=f"{name}.add"), name=f"{name}.relu")


def resnet50(b: GraphBuilder, num_classes: int) -> str:
    """ResNet-50 v1.5 on a 3x224x224 input; returns the logits tensor."""
    x = b.conv_bn(b.input, 64, 7, stride=2, name="conv1")
    x = b.maxpool(x, 3, 2, pad=1, name="maxpool")
    for i, (blocks, width) in enumerate(zip(_LAYERS, _WIDTHS)):
        for j in range(blocks):
            stride = 2 if (j == 0 and i > 0) else 1
            x = _bottleneck(b, x, width, stride, f"layer{i + 1}.{j}")
    x = b.flatten(b.global_avgpool(x, name="avgpool"), name="flatten")
    return b.gemm(x, num_classes, gain=1.0, name="fc")


def tiny_cnn(b: GraphBuilder, num_classes: int) -> str:
    """Conv+BN+ReLU stem, one basic residual block, a strided conv, global pool, Gemm."""
    x = b.conv_bn(b.input, 16, 3, name="stem")
    y = b.conv_bn(x, 16, 3, name="block.conv1")
    y = b.conv_bn(y, 16, 3, act=None, gamma_scale=0.5, name="block.conv2")
    x = b.relu(b.add(y, x, name="block.add"), name="block.relu")
    x = b.conv_bn(x, 32, 3, stride=2, name="down")
    x = b.flatten(b.global_avgpool(x, name="avgpool"), name="flatten")
    return b.gemm(x, num_classes, gain=1.0, name="fc")

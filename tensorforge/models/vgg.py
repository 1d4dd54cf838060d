"""VGG family: VGG-19 (configuration E of Simonyan & Zisserman 2014), 224x224.

Sixteen 3x3 convolutions with bias and ReLU in five stages separated by 2x2 max
pools, then three fully connected layers (25088 -> 4096 -> 4096 -> classes). No
BatchNormalization (the original network; torchvision's ``vgg19``). At 224x224
torchvision's adaptive 7x7 average pool is the identity, so it is left out.
"""

from __future__ import annotations

from tensorforge.models._builder import GraphBuilder

_VGG19 = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
          512, 512, 512, 512, "M", 512, 512, 512, 512, "M")


def vgg19(b: GraphBuilder, num_classes: int) -> str:
    """VGG-19 on a 3x224x224 input; returns the logits tensor."""
    x = b.input
    stage, idx = 1, 1
    for v in _VGG19:
        if v == "M":
            x = b.maxpool(x, 2, 2, name=f"pool{stage}")
            stage, idx = stage + 1, 1
        else:
            x = b.relu(b.conv(x, int(v), 3, name=f"conv{stage}_{idx}"), name=f"relu{stage}_{idx}")
            idx += 1
    x = b.flatten(x, features=512 * 7 * 7, name="flatten")
    x = b.relu(b.gemm(x, 4096, name="fc6"), name="relu6")
    x = b.relu(b.gemm(x, 4096, name="fc7"), name="relu7")
    return b.gemm(x, num_classes, gain=1.0, name="fc8")

"""AlexNet as Caffe's ``bvlc_alexnet`` (Krizhevsky et al. 2012), 227x227.

This is the original two-tower layout folded into one graph: conv2, conv4 and conv5
are grouped convolutions (group=2), and LRN (size 5, alpha 1e-4, beta 0.75, k 1)
follows conv1 and conv2, each before its max pool, as in Caffe's deploy.prototxt.
60,965,224 parameters and 724,406,816 multiply-accumulates per 227x227 image
(convolutions 665.8M + fully connected 58.6M). torchvision's ``alexnet`` is a
different, ungrouped variant without LRN (61.1M params, 0.71 GMAC at 224x224).
Dropout is left out (inference graph).
"""

from __future__ import annotations

from tensorforge.models._builder import GraphBuilder


def alexnet(b: GraphBuilder, num_classes: int) -> str:
    """Caffe bvlc_alexnet on a 3x227x227 input; returns the logits tensor."""
    x = b.relu(b.conv(b.input, 96, 11, stride=4, pad=0, name="conv1"), name="relu1")  # 55
    x = b.maxpool(b.lrn(x, name="norm1"), 3, 2, name="pool1")  # 27
    x = b.relu(b.conv(x, 256, 5, pad=2, group=2, name="conv2"), name="relu2")
    x = b.maxpool(b.lrn(x, name="norm2"), 3, 2, name="pool2")  # 13
    x = b.relu(b.conv(x, 384, 3, name="conv3"), name="relu3")
    x = b.relu(b.conv(x, 384, 3, group=2, name="conv4"), name="relu4")
    x = b.relu(b.conv(x, 256, 3, group=2, name="conv5"), name="relu5")
    x = b.maxpool(x, 3, 2, name="pool5")  # 6
    x = b.flatten(x, features=256 * 6 * 6, name="flatten")
    x = b.relu(b.gemm(x, 4096, name="fc6"), name="relu6")
    x = b.relu(b.gemm(x, 4096, name="fc7"), name="relu7")
    return b.gemm(x, num_classes, gain=1.0, name="fc8")

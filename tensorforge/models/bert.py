"""BERT encoder (Devlin et al. 2018) as a plain-ONNX graph with seeded Gaussian weights.

The graph is what a PyTorch export of Hugging Face's ``BertModel`` looks like before any
transformer fusion, so the fusion passes (attention, LayerNorm / SkipLayerNorm, GELU,
embedding + LayerNorm) have their textbook patterns to find:

* embeddings: ``Gather`` of word, position (``Range`` over the dynamic sequence length)
  and token-type tables, summed, then ``LayerNormalization`` (opset 17);
* each layer: Q/K/V as ``MatMul`` + ``Add``, heads split by ``Reshape`` + ``Transpose``,
  ``MatMul`` scores divided by sqrt(head size), the additive mask
  ``(1 - attention_mask) * -10000`` broadcast over heads and queries (``Unsqueeze`` ×2, ``Cast``,
  ``Sub``, ``Mul``, the order a Hugging Face export uses and ONNX Runtime's Attention fusion matches), ``Softmax``,
  context ``MatMul``, output projection, residual ``Add`` + ``LayerNormalization``; a feed
  forward block with exact GELU ``0.5 * x * (1 + Erf(x / sqrt 2))``; residual + LayerNorm;
* pooler: the first token's hidden state through ``MatMul`` + ``Add`` + ``Tanh``.

Inputs ``input_ids``, ``attention_mask`` and ``token_type_ids`` are int64 ``[N, S]``; outputs
``last_hidden_state`` ``[N, S, hidden]`` and ``pooler_output`` ``[N, hidden]``; both N and S
are dynamic. Weights are N(0, 0.02) (BERT's ``initializer_range``), LayerNorm gamma in
[0.9, 1.1] and beta N(0, 0.02), so activations stay O(1) and no LayerNorm is an identity.
The longest sequence the position table allows is recorded in the model's metadata
(``tensorforge.max_sequence``), where shape profiles read it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import onnx

from tensorforge.core.profiles import MAX_SEQUENCE_KEY
from tensorforge.models._seqgraph import FLOAT, INT64, SeqGraph

__all__ = ["BertConfig", "BERT_BASE", "BERT_TINY", "build_bert", "MAX_SEQUENCE_KEY"]

_INIT_STD = 0.02  # BERT's initializer_range


@dataclass(frozen=True)
class BertConfig:
    """The hyper-parameters of Hugging Face's ``BertConfig`` that fix the graph."""

    layers: int
    hidden: int
    heads: int
    intermediate: int
    vocab: int
    max_positions: int
    type_vocab: int = 2

    def weight_count(self) -> int:
        """Parameters by formula (embeddings + layers + pooler), the figure a test compares with."""
        h, i = self.hidden, self.intermediate
        emb = (self.vocab + self.max_positions + self.type_vocab) * h + 2 * h
        layer = 4 * (h * h + h) + 2 * h + (h * i + i) + (i * h + h) + 2 * h
        return emb + self.layers * layer + h * h + h

    def macs_per_token(self, seq: int) -> int:
        """Multiply-accumulates per token at sequence length ``seq`` (MatMuls only, no pooler)."""
        h, i = self.hidden, self.intermediate
        return self.layers * (4 * h * h + 2 * h * i + 2 * seq * h)


#: bert-base-uncased: 109,482,240 parameters with the pooler (the "110M" of the paper).
BERT_BASE = BertConfig(layers=12, hidden=768, heads=12, intermediate=3072, vocab=30522,
                       max_positions=512)
#: A two-layer, 128-wide variant for tests (milliseconds to build and run).
BERT_TINY = BertConfig(layers=2, hidden=128, heads=2, intermediate=512, vocab=1000,
                       max_positions=128)


def _heads(g: SeqGraph, x: str, cfg: BertConfig, perm: list[int], name: str) -> str:
    """[N, S, H] -> [N, heads, S, d] (perm 0,2,1,3) or [N, heads, d, S] (perm 0,2,3,1)."""
    shape = g.ints(f"{name}.shape", [0, 0, cfg.heads, cfg.hidden // cfg.heads])
    return g.op("Transpose", [g.op("Reshape", [x, shape], name=f"{name}.reshape")],
                name=f"{name}.transpose", perm=perm)


def _layer(g: SeqGraph, x: str, mask: str, cfg: BertConfig, name: str) -> str:
    h = cfg.hidden
    q = _heads(g, g.linear(x, h, h, name=f"{name}.attention.query", std=_INIT_STD), cfg,
               [0, 2, 1, 3], f"{name}.attention.q")
    k = _heads(g, g.linear(x, h, h, name=f"{name}.attention.key", std=_INIT_STD), cfg,
               [0, 2, 3, 1], f"{name}.attention.k")
    v = _heads(g, g.linear(x, h, h, name=f"{name}.attention.value", std=_INIT_STD), cfg,
               [0, 2, 1, 3], f"{name}.attention.v")
    scores = g.op("MatMul", [q, k], name=f"{name}.attention.scores")
    # scaled as Hugging Face's BertSelfAttention does (a Div): ONNX Runtime's matcher takes the mask Add's
    # first Mul parent for the mask, so a Mul here would hide the mask path from it
    scores = g.op("Div", [scores, g.scalar(math.sqrt(h // cfg.heads))], name=f"{name}.attention.scale")
    scores = g.op("Add", [scores, mask], name=f"{name}.attention.mask")
    probs = g.op("Softmax", [scores], name=f"{name}.attention.softmax", axis=-1)
    ctx = g.op("MatMul", [probs, v], name=f"{name}.attention.context")
    ctx = g.op("Transpose", [ctx], name=f"{name}.attention.context.transpose", perm=[0, 2, 1, 3])
    ctx = g.op("Reshape", [ctx, g.ints(f"{name}.attention.merge", [0, 0, h])],
               name=f"{name}.attention.context.reshape")
    attn = g.linear(ctx, h, h, name=f"{name}.attention.output.dense", std=_INIT_STD)
    x = g.layernorm(g.op("Add", [attn, x], name=f"{name}.attention.residual"), h,
                    name=f"{name}.attention.output.LayerNorm")
    y = g.linear(x, h, cfg.intermediate, name=f"{name}.intermediate.dense", std=_INIT_STD)
    # Exact GELU, as torch.nn.functional.gelu exports it.
    erf = g.op("Erf", [g.op("Div", [y, g.scalar(math.sqrt(2.0))], name=f"{name}.gelu.div")],
               name=f"{name}.gelu.erf")
    y = g.op("Mul", [g.op("Mul", [y, g.op("Add", [erf, g.scalar(1.0)], name=f"{name}.gelu.add")],
                          name=f"{name}.gelu.mul"), g.scalar(0.5)], name=f"{name}.gelu")
    y = g.linear(y, cfg.intermediate, h, name=f"{name}.output.dense", std=_INIT_STD)
    return g.layernorm(g.op("Add", [y, x], name=f"{name}.output.residual"), h,
                       name=f"{name}.output.LayerNorm")


def build_bert(cfg: BertConfig, *, name: str, seed: int, opset: int, doc: str) -> onnx.ModelProto:
    """The BERT graph of ``cfg`` with weights drawn from ``numpy.random.default_rng(seed)``."""
    g = SeqGraph(name, np.random.default_rng(seed))
    ids = g.input("input_ids", INT64, ["N", "S"])
    mask_in = g.input("attention_mask", INT64, ["N", "S"])
    types = g.input("token_type_ids", INT64, ["N", "S"])
    h = cfg.hidden
    # Embeddings: word + position (0..S-1, S read off the input) + token type, LayerNorm.
    word = g.op("Gather", [g.gauss("embeddings.word_embeddings.weight", (cfg.vocab, h), _INIT_STD), ids],
                name="embeddings.word")
    seq = g.op("Gather", [g.op("Shape", [ids], name="embeddings.shape"), g.ints("one", [1])],
               name="embeddings.seq_len", axis=0)
    seq = g.op("Squeeze", [seq, g.ints("axes0", [0])], name="embeddings.seq_len.scalar")
    pos_ids = g.op("Range", [g.scalar(0, "int64"), seq, g.scalar(1, "int64")], name="embeddings.position_ids")
    pos = g.op("Gather", [g.gauss("embeddings.position_embeddings.weight", (cfg.max_positions, h), _INIT_STD),
                          pos_ids], name="embeddings.position")
    tok = g.op("Gather", [g.gauss("embeddings.token_type_embeddings.weight", (cfg.type_vocab, h), _INIT_STD),
                          types], name="embeddings.token_type")
    x = g.op("Add", [g.op("Add", [word, pos], name="embeddings.add_position"), tok], name="embeddings.sum")
    x = g.layernorm(x, h, name="embeddings.LayerNorm")
    # Additive mask [N, 1, 1, S]: 0 where attended, -10000 on padding (BERT's extended mask), built as a
    # Hugging Face export builds it (Unsqueeze 1, Unsqueeze 2, Cast, Sub(1, .), Mul): the pattern ONNX
    # Runtime's attention fusion reads the raw [N, S] mask from.
    m = g.op("Unsqueeze", [mask_in, g.ints("axes1", [1])], name="mask.unsqueeze1")
    m = g.op("Unsqueeze", [m, g.ints("axes2", [2])], name="mask.unsqueeze2")
    m = g.op("Cast", [m], name="mask.cast", to=FLOAT)
    m = g.op("Mul", [g.op("Sub", [g.scalar(1.0), m], name="mask.invert"), g.scalar(-10000.0)],
             name="mask.additive")
    for i in range(cfg.layers):
        x = _layer(g, x, m, cfg, f"encoder.layer.{i}")
    first = g.op("Gather", [x, g.scalar(0, "int64")], name="pooler.first_token", axis=1)
    pooled = g.op("Tanh", [g.linear(first, h, h, name="pooler.dense", std=_INIT_STD)], name="pooler.tanh")
    g.output(x, "last_hidden_state", FLOAT, ["N", "S", h])
    g.output(pooled, "pooler_output", FLOAT, ["N", h])
    return g.model(opset=opset, doc=doc, metadata={MAX_SEQUENCE_KEY: str(cfg.max_positions)})


def bert_inputs(batch: int, seq: int, vocab: int, *, seed: int = 0,
                lengths: list[int] | None = None) -> dict[str, np.ndarray]:
    """Token ids in [0, vocab), a padding mask (``lengths`` real tokens per row, default all)
    and token types (first half 0, second half 1): a well-formed BERT feed for tests."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, vocab, size=(batch, seq), dtype=np.int64)
    mask = np.ones((batch, seq), dtype=np.int64)
    for r, n in enumerate(lengths or []):
        mask[r, n:] = 0
    types = np.zeros((batch, seq), dtype=np.int64)
    types[:, seq // 2:] = 1
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}

"""OpenNMT-style LSTM translator (the "WMT-DE" workload of seed Chart 2) as one ONNX graph.

The architecture is OpenNMT's RNN baseline for WMT English->German (Klein et al. 2017;
OpenNMT-py defaults): word embeddings, a 2-layer unidirectional LSTM encoder, a 2-layer
LSTM decoder with *input feeding* (the previous attentional vector is concatenated to the
embedding) and Luong *global attention* with the "general" score
``h_t^T W_a h_s`` (Luong et al. 2015), the attentional vector
``tanh(W_c [context; h_t])`` and a linear generator over the target vocabulary.

Greedy decoding runs inside the graph as one ONNX ``Loop`` (rather than an encoder +
decoder-step pair driven from Python): each iteration embeds the previous token, steps
both LSTM layers once (ONNX ``LSTM`` with a sequence of 1, states carried by the loop),
attends over the encoder's memory bank and takes the ``ArgMax``. One graph means one
engine file, one session call per batch and no per-token Python/session overhead, and the
whole decoder stays visible to graph passes and backends. Decoding starts from BOS, stops
when every row has emitted EOS or after ``min(2 * S, max_decode)`` steps.

Input ``src`` int64 ``[N, S]`` (unpadded token ids; N and S dynamic); output ``tokens`` int64
``[N, T]`` (T <= min(2 S, max_decode), data dependent). Weights are uniform in
[-0.1, 0.1], OpenNMT's ``param_init``. Predictions are meaningless; shapes, op mix,
parameter count and the work per token are those of the real model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper

from tensorforge.models._seqgraph import INT64, SeqGraph

__all__ = ["NmtConfig", "OPENNMT_WMT", "OPENNMT_TINY", "build_opennmt", "BOS", "EOS"]

BOS, EOS = 2, 3  # OpenNMT's vocabulary: 0 <blank>, 1 <unk>, 2 <s>, 3 </s>
_INIT = 0.1  # OpenNMT-py's param_init: uniform(-0.1, 0.1)


@dataclass(frozen=True)
class NmtConfig:
    src_vocab: int
    tgt_vocab: int
    emb: int
    hidden: int
    layers: int = 2
    max_decode: int = 100  # OpenNMT translate.py's default max_length

    def weight_count(self) -> int:
        """Parameters by formula; ONNX LSTM keeps both bias vectors (like torch's b_ih, b_hh)."""
        e, h, L = self.emb, self.hidden, self.layers

        def lstm(cin: int) -> int:
            return 4 * h * (cin + h) + 8 * h

        enc = self.src_vocab * e + lstm(e) + (L - 1) * lstm(h)
        dec = self.tgt_vocab * e + lstm(e + h) + (L - 1) * lstm(h)
        attn = h * h + 2 * h * h  # W_a ("general"), W_c (no bias in OpenNMT's linear_out)
        return enc + dec + attn + h * self.tgt_vocab + self.tgt_vocab


#: OpenNMT-py's WMT En->De RNN baseline: 50,000 words + 4 specials, 500-wide, 2 layers.
OPENNMT_WMT = NmtConfig(src_vocab=50004, tgt_vocab=50004, emb=500, hidden=500)
#: A tiny variant for tests.
OPENNMT_TINY = NmtConfig(src_vocab=100, tgt_vocab=100, emb=16, hidden=32, max_decode=20)


def _lstm_weights(g: SeqGraph, name: str, cin: int, h: int) -> list[str]:
    return [g.uniform(f"{name}.W", (1, 4 * h, cin), -_INIT, _INIT),
            g.uniform(f"{name}.R", (1, 4 * h, h), -_INIT, _INIT),
            g.uniform(f"{name}.B", (1, 8 * h), -_INIT, _INIT)]


def _body(outer: SeqGraph, cfg: NmtConfig, w: dict[str, Any], memory: str,
          keys: str) -> onnx.GraphProto:
    """One greedy decoding step; weights, memory and keys come from the outer scope."""
    g = SeqGraph("decode_step", outer.rng, prefix="step.")
    h = cfg.hidden
    g.input("iter", INT64, [])
    g.input("cond_in", TensorProto.BOOL, [])
    tok = g.input("tok_in", INT64, ["N"])
    states = [g.input(f"{s}{i}_in", TensorProto.FLOAT, [1, "N", h]) for i in range(cfg.layers) for s in "hc"]
    feed = g.input("feed_in", TensorProto.FLOAT, ["N", h])
    done = g.input("done_in", TensorProto.BOOL, ["N"])
    emb = g.op("Gather", [w["tgt_emb"], tok], name="emb")
    x = g.op("Unsqueeze", [g.op("Concat", [emb, feed], name="input_feed", axis=1), g.ints("axes0", [0])],
             name="x")
    new_states = []
    for i in range(cfg.layers):
        W, R, B = w[f"dec{i}"]
        _, yh, yc = g.op("LSTM", [x, W, R, B, "", states[2 * i], states[2 * i + 1]], name=f"lstm{i}",
                         outputs=3, hidden_size=h)
        new_states += [yh, yc]
        x = yh  # [1, N, H]: the next layer's one-step sequence
    top = g.op("Squeeze", [x, g.ints("axes0b", [0])], name="top")  # [N, H]
    # Luong "general" attention: score_s = h_t . (W_a h_s); keys = memory @ W_a^T precomputed.
    scores = g.op("MatMul", [keys, g.op("Unsqueeze", [top, g.ints("axesm1", [-1])], name="top_col")],
                  name="scores")  # [N, S, 1]
    probs = g.op("Softmax", [g.op("Squeeze", [scores, g.ints("axesm1b", [-1])], name="scores_flat")],
                 name="align", axis=1)
    ctx = g.op("MatMul", [g.op("Unsqueeze", [probs, g.ints("axes1", [1])], name="align_row"), memory],
               name="context3")  # [N, 1, H]
    ctx = g.op("Squeeze", [ctx, g.ints("axes1b", [1])], name="context")
    attn_h = g.op("Tanh", [g.op("MatMul", [g.op("Concat", [ctx, top], name="ctx_top", axis=1), w["W_c"]],
                                name="linear_out")], name="attn_h")
    logits = g.op("Add", [g.op("MatMul", [attn_h, w["gen_W"]], name="generator"), w["gen_b"]], name="logits")
    nxt = g.op("ArgMax", [logits], name="next", axis=1, keepdims=0)
    done_out = g.op("Or", [done, g.op("Equal", [nxt, g.scalar(EOS, "int64")], name="is_eos")], name="done")
    all_done = g.op("ReduceMin", [g.op("Cast", [done_out], name="done_i", to=TensorProto.INT64)],
                    name="all_done", keepdims=0)
    cond = g.op("Not", [g.op("Cast", [all_done], name="all_done_b", to=TensorProto.BOOL)], name="cond")
    g.output(cond, "cond_out", TensorProto.BOOL, [])
    g.output(nxt, "tok_out", INT64, ["N"])
    for i, s in enumerate(new_states):
        g.output(s, f"{'hc'[i % 2]}{i // 2}_out", TensorProto.FLOAT, [1, "N", h])
    g.output(attn_h, "feed_out", TensorProto.FLOAT, ["N", h])
    g.output(done_out, "done_out", TensorProto.BOOL, ["N"])
    g.output(nxt, "emitted", INT64, ["N"])
    assert not g.inits or all(t.name.startswith("step.") for t in g.inits)
    # Body constants become Constant nodes: a Loop body should not carry initializers.
    consts = [helper.make_node("Constant", [], [t.name], value=t) for t in g.inits]
    g.nodes[:0] = consts
    g.inits = []
    return g.graph()


def build_opennmt(cfg: NmtConfig, *, name: str, seed: int, opset: int, doc: str) -> onnx.ModelProto:
    """The translator of ``cfg`` with weights from ``numpy.random.default_rng(seed)``."""
    g = SeqGraph(name, np.random.default_rng(seed))
    e, h = cfg.emb, cfg.hidden
    src = g.input("src", INT64, ["N", "S"])
    # Encoder: embeddings, time-major for ONNX LSTM, 2 stacked layers.
    x = g.op("Gather", [g.uniform("encoder.embeddings", (cfg.src_vocab, e), -_INIT, _INIT), src], name="enc.emb")
    x = g.op("Transpose", [x], name="enc.time_major", perm=[1, 0, 2])  # [S, N, E]
    init: list[str] = []
    for i in range(cfg.layers):
        y, yh, yc = g.op("LSTM", [x, *_lstm_weights(g, f"encoder.rnn{i}", e if i == 0 else h, h)],
                         name=f"enc.lstm{i}", outputs=3, hidden_size=h)
        x = g.op("Squeeze", [y, g.ints(f"enc.axes{i}", [1])], name=f"enc.y{i}")  # [S, N, H]
        init += [yh, yc]
    memory = g.op("Transpose", [x], name="memory_bank", perm=[1, 0, 2])  # [N, S, H]
    w_a = g.uniform("decoder.attn.linear_in", (h, h), -_INIT, _INIT)  # keys = memory @ W_a
    keys = g.op("MatMul", [memory, w_a], name="attn_keys")
    w: dict[str, Any] = {"tgt_emb": g.uniform("decoder.embeddings", (cfg.tgt_vocab, e), -_INIT, _INIT)}
    for i in range(cfg.layers):
        w[f"dec{i}"] = _lstm_weights(g, f"decoder.rnn{i}", e + h if i == 0 else h, h)
    w["W_c"] = g.uniform("decoder.attn.linear_out", (2 * h, h), -_INIT, _INIT)
    w["gen_W"] = g.uniform("generator.weight", (h, cfg.tgt_vocab), -_INIT, _INIT)
    w["gen_b"] = g.uniform("generator.bias", (cfg.tgt_vocab,), -_INIT, _INIT)
    # Loop bounds and start state: BOS per row, zero input feed, nothing finished.
    shape = g.op("Shape", [src], name="src_shape")
    n = g.op("Gather", [shape, g.ints("idx0", [0])], name="batch", axis=0)
    s = g.op("Gather", [shape, g.scalar(1, "int64")], name="src_len", axis=0)
    steps = g.op("Min", [g.op("Mul", [s, g.scalar(2, "int64")], name="twice_len"),
                         g.scalar(cfg.max_decode, "int64")], name="max_steps")
    bos = g.op("Expand", [g.scalar(BOS, "int64"), n], name="bos")
    feed0 = g.op("ConstantOfShape", [g.op("Concat", [n, g.ints("hidden", [h])], name="feed_shape", axis=0)],
                 name="feed0", value=helper.make_tensor("zero", TensorProto.FLOAT, [1], [0.0]))
    done0 = g.op("Equal", [bos, g.scalar(EOS, "int64")], name="done0")
    true = g.const("true", np.array(True))
    outs = g.op("Loop", [steps, true, bos, *init, feed0, done0], name="greedy", outputs=4 + 2 * cfg.layers,
                body=_body(g, cfg, w, memory, keys))
    tokens = g.op("Transpose", [outs[-1]], name="tokens_nt", perm=[1, 0])  # [T, N] -> [N, T]
    g.output(tokens, "tokens", INT64, ["N", "T"])
    return g.model(opset=opset, doc=doc)

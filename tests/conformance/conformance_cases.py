"""The models with test data inside the ``onnx`` package, and one conformance run over them.

Each case is a model plus its shipped inputs and expected outputs:
``{pytorch-converted,pytorch-operator,simple}/<name>/model.onnx`` with ``test_data_set_0/input_*.pb``
and ``output_*.pb``, and ``light/light_<name>.onnx`` with ``light_<name>_output_0.pb`` (inputs are the
onnx runner's dummy data: ``arange(n) / n`` in the input's shape). ``real/`` holds only download
links, so it has no case. A run builds the model (verification on), loads the engine, runs it on
the shipped inputs and compares with the shipped outputs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

DATA = Path(onnx.__file__).parent / "backend" / "test" / "data"
FOLDERS = ("pytorch-converted", "pytorch-operator", "simple", "real", "light")
RTOL, ATOL = 1e-3, 1e-5     # the onnx backend runner's rtol; atol for outputs near zero


@dataclass(frozen=True)
class Case:
    folder: str
    name: str
    model: Path

    @property
    def key(self) -> str:
        return f"{self.folder}/{self.name}"


def cases() -> list[Case]:
    out: list[Case] = []
    for folder in FOLDERS:
        root = DATA / folder
        if not root.is_dir():
            continue
        if folder == "light":
            out += [Case(folder, p.stem, p) for p in sorted(root.glob("light_*.onnx"))]
        else:
            out += [Case(folder, d.name, d / "model.onnx") for d in sorted(root.iterdir())
                    if (d / "model.onnx").is_file()]
    return out


def _read(path: Path) -> np.ndarray:
    t = onnx.TensorProto()
    t.ParseFromString(path.read_bytes())
    return numpy_helper.to_array(t)


def shipped_data(case: Case) -> tuple[dict[str, np.ndarray], list[np.ndarray]]:
    """(inputs by name, expected outputs in graph order) of ``case``."""
    model = onnx.load(str(case.model), load_external_data=False)
    inits = {t.name for t in model.graph.initializer}
    names = [i.name for i in model.graph.input if i.name not in inits]
    if case.folder == "light":
        feeds = {}
        for vi in model.graph.input:
            if vi.name in inits:
                continue
            shape = tuple(d.dim_value if d.HasField("dim_value") else 1 for d in vi.type.tensor_type.shape.dim)
            n = int(np.prod(shape))
            feeds[vi.name] = (np.arange(n).reshape(shape) / n).astype(np.float32)
        outputs = [_read(case.model.with_name(f"{case.model.stem}_output_{i}.pb"))
                   for i in range(len(model.graph.output))]
        return feeds, outputs
    data = case.model.parent / "test_data_set_0"
    inputs = [_read(data / f"input_{i}.pb") for i in range(len(names))]
    outputs = [_read(data / f"output_{i}.pb") for i in range(len(model.graph.output))]
    return dict(zip(names, inputs)), outputs


def run_case(case: Case, backend: str = "onnxruntime") -> None:
    """Build, load, run on the shipped inputs, compare; raises on any difference or failure."""
    import tensorforge
    from tensorforge.engine.build import BuildOptions

    engine, _ = tensorforge.build(case.model, options=BuildOptions(backend=backend, verify=True))
    feeds, expected = shipped_data(case)
    session = engine.session(warn_host=False, check_finite=False)
    got = session.run(feeds)
    assert len(got) == len(expected), f"{len(got)} outputs, expected {len(expected)}"
    for (name, g), w in zip(got.items(), expected):
        assert g.shape == w.shape, f"output {name!r}: shape {g.shape}, expected {w.shape}"
        if g.dtype.kind in "fc":
            np.testing.assert_allclose(g, w, rtol=RTOL, atol=ATOL, err_msg=f"output {name!r}")
        else:
            np.testing.assert_array_equal(g, w, err_msg=f"output {name!r}")


def expectations(backend: str) -> dict[str, dict[str, str]]:
    path = Path(__file__).with_name(f"expected_{backend}.json")
    return json.loads(path.read_text()) if path.exists() else {}


def summary() -> dict[str, object]:
    """What ``tensorforge backends`` shows (``tensorforge/backends/conformance.json``): per backend, the
    cases its suite runs (every folder on onnxruntime; all but ``light`` on the others) and how many
    pass, are refused with a typed error, or are known wrong — from the expectations files."""
    rows: dict[str, dict[str, int]] = {}
    for backend in ("onnxruntime", "openvino", "torch"):
        suite = {c.key for c in cases() if backend == "onnxruntime" or c.folder != "light"}
        listed = {k: v for k, v in expectations(backend).items() if k in suite}
        wrong = sum(1 for v in listed.values() if "known_failure" in v)
        rows[backend] = {"cases": len(suite), "passed": len(suite) - len(listed),
                         "typed_refusal": len(listed) - wrong, "known_failure": wrong}
    return {"suite": "the models with test data inside the onnx package (onnx/backend/test/data)",
            "onnx": onnx.__version__, "backends": rows}


if __name__ == "__main__":       # python tests/conformance/conformance_cases.py [backend] > table
    import sys
    import time

    from tensorforge.errors import TensorForgeError

    backend = sys.argv[1] if len(sys.argv) > 1 else "onnxruntime"
    results: dict[str, dict[str, str]] = {}
    for c in cases():
        t = time.perf_counter()
        try:
            run_case(c, backend)
            status, reason = "pass", ""
        except TensorForgeError as exc:
            status, reason = "refused", f"{type(exc).__name__}: {exc}"
        except Exception as exc:  # noqa: BLE001
            status, reason = "failed", f"{type(exc).__name__}: {exc}"
        results[c.key] = {"status": status, "reason": reason[:400], "s": f"{time.perf_counter() - t:.2f}"}
        print(c.key, status, results[c.key]["s"], reason[:200].replace("\n", " "), flush=True)
    Path(f"/tmp/conformance_{backend}.json").write_text(json.dumps(results, indent=1))

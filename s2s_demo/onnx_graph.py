"""A small builder of ONNX graphs for ONNX Runtime, and the sessions that run them.

Used by the int8-blocks arithmetic (``s2s_demo.blockwise``, ``s2s_demo.fused_step``): onnx and
onnxruntime are imported when a graph is built, so nothing else pays for them.
"""

from __future__ import annotations

import numpy as np
import torch

OPSETS = (("", 21), ("com.microsoft", 1))


class Graph:
    """Nodes and constants, named as they are added; ``op`` returns its output's name."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.nodes: list = []
        self.constants: dict[str, np.ndarray] = {}
        self.inputs: list = []

    def _fresh(self, stem: str) -> str:
        return f"{stem}_{len(self.nodes) + len(self.constants)}"

    def input(self, name: str, dtype: type, shape: list) -> str:
        from onnx import helper

        self.inputs.append(helper.make_tensor_value_info(name, _elem_type(dtype), shape))
        return name

    def const(self, value, dtype=np.float32) -> str:
        name = self._fresh("c")
        self.constants[name] = np.array(value, dtype=dtype, order="C")  # a copy; keeps 0-d scalars 0-d
        return name

    def ints(self, *values: int) -> str:
        return self.const(list(values), np.int64)

    def op(self, kind: str, *inputs: str, outputs: int = 1, domain: str = "", **attrs) -> str | list[str]:
        from onnx import helper

        names = [self._fresh(kind.lower()) + (f"_{i}" if outputs > 1 else "") for i in range(outputs)]
        self.nodes.append(helper.make_node(kind, list(inputs), names, domain=domain or None, **attrs))
        return names[0] if outputs == 1 else names

    def serialize(self, outputs: dict[str, tuple[str, type, list]]) -> bytes:
        """``outputs``: graph output name -> (the node output it is, dtype, shape)."""
        from onnx import helper, numpy_helper

        nodes = self.nodes + [helper.make_node("Identity", [source], [name]) for name, (source, _, _) in outputs.items()]
        graph = helper.make_graph(
            nodes, self.name, self.inputs,
            [helper.make_tensor_value_info(name, _elem_type(dtype), shape) for name, (_, dtype, shape) in outputs.items()],
            [numpy_helper.from_array(value, name) for name, value in self.constants.items()])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in OPSETS])
        return model.SerializeToString()


def _elem_type(dtype: type) -> int:
    from onnx import TensorProto

    return {np.float32: TensorProto.FLOAT, np.int64: TensorProto.INT64, np.bool_: TensorProto.BOOL}[dtype]


# up to this many rows a call runs on one thread: a second one's wake-up costs more than it saves
# for one row, while a beam-5 search (10 rows a product once blockwise splits them) ran 8% faster on two
FEW_ROWS = 2


class Runner:
    """A graph in two ONNX Runtime CPU sessions, one thread and every thread torch has, each
    call run by the one that suits its number of rows; idle threads do not spin."""

    def __init__(self, model: bytes) -> None:
        self.few, self.many = (_session(model, threads).run for threads in (1, torch.get_num_threads()))

    def __call__(self, rows: int, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """The graph's outputs, in order, for ``feeds`` (input name -> array) of ``rows`` rows."""
        return (self.few if rows <= FEW_ROWS else self.many)(None, feeds)


def _session(model: bytes, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # idle threads otherwise spin after each call, on the cores torch's next ops need
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime raises its own exception types
        raise RuntimeError(f"onnxruntime did not load the graph: {err}") from err


def as_numpy(x: torch.Tensor) -> np.ndarray:
    """A CPU tensor's data as a numpy array, without a copy where it is contiguous."""
    return x.detach().contiguous().numpy()

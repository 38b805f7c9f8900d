"""The torch-free ``.pth`` reader and the EfficientNet-Lite0 ONNX build."""

from __future__ import annotations

import pickle
import struct
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from PIL import Image

from xintu.inference.local import effnet
from xintu.inference.local.labels import class_names
from xintu.inference.local.pipeline import LocalPipeline
from xintu.inference.local.torch_pickle import TorchPickleError, load_state_dict


def test_state_dict_reads_every_tensor() -> None:
    weights = load_state_dict(effnet.source_weights_path())
    assert len(weights) == 296
    assert weights["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert weights["_fc.weight"].shape == (1000, 1280)
    assert weights["_fc.weight"].dtype == np.float32


def test_unpickler_refuses_globals_outside_a_state_dict(tmp_path: Path) -> None:
    path = tmp_path / "evil.pth"
    with path.open("wb") as file:
        for header in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}):
            pickle.dump(header, file, protocol=2)
        # A GLOBAL opcode for os.system: a plain pickle.load would import and call it.
        file.write(b"\x80\x02cos\nsystem\nq\x00.")
        file.write(struct.pack("<q", 0))
    with pytest.raises(TorchPickleError, match="os.system"):
        load_state_dict(path)


def test_conversion_is_deterministic() -> None:
    first = effnet.build_onnx_bytes(effnet.source_weights_path())
    second = effnet.build_onnx_bytes(effnet.source_weights_path())
    assert first == second


def test_ensure_model_is_atomic_under_concurrent_builders(tmp_path: Path) -> None:
    models = tmp_path / "models"
    results: list[Path] = []
    threads = [
        threading.Thread(target=lambda: results.append(effnet.ensure_model(models)))
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 2
    assert {p.name for p in models.iterdir()} == {effnet.MODEL_FILENAME}
    ort.InferenceSession(str(results[0]), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize(
    ("relative", "expected"),
    [
        ("pets/chelsea.jpg", {"tabby", "tiger cat"}),
        ("foods/coffee.jpg", {"espresso"}),
        ("travel_scenery/china.jpg", {"palace"}),
    ],
)
def test_converted_model_gives_known_top5_labels(
    classifier_pipeline: LocalPipeline,
    eval_image: Callable[[str], Path],
    relative: str,
    expected: set[str],
) -> None:
    rgb = Image.open(eval_image(relative)).convert("RGB")
    probs = classifier_pipeline.label_probabilities(rgb)
    top5 = {class_names()[int(i)] for i in np.argsort(-probs)[:5]}
    assert expected <= top5
    assert probs.sum() == pytest.approx(1.0, abs=1e-4)


def test_espresso_is_confident_top1(
    classifier_pipeline: LocalPipeline, eval_image: Callable[[str], Path]
) -> None:
    rgb = Image.open(eval_image("foods/coffee.jpg")).convert("RGB")
    probs = classifier_pipeline.label_probabilities(rgb)
    assert class_names()[int(np.argmax(probs))] == "espresso"
    assert float(probs.max()) > 0.8

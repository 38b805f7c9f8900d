"""Read a PyTorch legacy (non-zip) ``.pth`` state dict into numpy arrays, without torch.

The legacy format is: magic number, protocol version, system info, the pickled
state dict whose storages are persistent ids, the list of storage keys, then
each storage's raw bytes (an int64 element count followed by the elements).
Only the handful of globals a plain state dict needs are allowed, so a hostile
file cannot run code through ``pickle``.
"""

from __future__ import annotations

import collections
import pickle
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import numpy.typing as npt

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001

# torch storage class name -> numpy dtype
_STORAGE_DTYPES: dict[str, np.dtype[Any]] = {
    "FloatStorage": np.dtype("<f4"),
    "DoubleStorage": np.dtype("<f8"),
    "HalfStorage": np.dtype("<f2"),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}


class TorchPickleError(ValueError):
    """The file is not a legacy PyTorch state dict we can read safely."""


@dataclass(frozen=True, slots=True)
class _StorageType:
    dtype: np.dtype[Any]


@dataclass(slots=True)
class _Storage:
    key: str
    dtype: np.dtype[Any]
    numel: int
    data: npt.NDArray[Any] | None = None


@dataclass(frozen=True, slots=True)
class _LazyTensor:
    storage: _Storage
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]

    def materialize(self) -> npt.NDArray[Any]:
        if self.storage.data is None:
            raise TorchPickleError(f"storage {self.storage.key} was never read")
        itemsize = self.storage.dtype.itemsize
        base = self.storage.data[self.offset :]
        view = np.lib.stride_tricks.as_strided(
            base, shape=self.size, strides=tuple(s * itemsize for s in self.stride)
        )
        return np.array(view, copy=True)


def _rebuild_tensor_v2(
    storage: _Storage,
    storage_offset: int,
    size: tuple[int, ...],
    stride: tuple[int, ...],
    *_ignored: Any,
) -> _LazyTensor:
    return _LazyTensor(storage, storage_offset, tuple(size), tuple(stride))


def _rebuild_parameter(data: _LazyTensor, *_ignored: Any) -> _LazyTensor:
    return data


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: IO[bytes], storages: dict[str, _Storage]) -> None:
        super().__init__(file)
        self._storages = storages

    def find_class(self, module: str, name: str) -> Any:
        # The only globals a state dict of plain tensors refers to.
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor_v2
        if module == "torch._utils" and name == "_rebuild_parameter":
            return _rebuild_parameter
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(_STORAGE_DTYPES[name])
        raise TorchPickleError(f"global {module}.{name} is not allowed in a state dict")

    def persistent_load(self, pid: Any) -> Any:
        if not isinstance(pid, tuple) or not pid or pid[0] != "storage":
            raise TorchPickleError(f"unexpected persistent id {pid!r}")
        storage_type, key, _location, numel, view_metadata = pid[1:6]
        if not isinstance(storage_type, _StorageType) or view_metadata is not None:
            raise TorchPickleError("storage views are not supported")
        storage = self._storages.get(key)
        if storage is None:
            storage = _Storage(key=str(key), dtype=storage_type.dtype, numel=int(numel))
            self._storages[key] = storage
        return storage


class _PlainUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        raise TorchPickleError(f"global {module}.{name} is not allowed in the header")


def load_state_dict(path: Path) -> dict[str, npt.NDArray[Any]]:
    """Every tensor of a legacy ``.pth`` state dict, as numpy arrays keyed by name."""
    storages: dict[str, _Storage] = {}
    with path.open("rb") as file:
        magic = _PlainUnpickler(file).load()
        protocol = _PlainUnpickler(file).load()
        if magic != _LEGACY_MAGIC or protocol != _LEGACY_PROTOCOL:
            raise TorchPickleError(f"{path.name} is not a legacy PyTorch file")
        sys_info = _PlainUnpickler(file).load()
        if not isinstance(sys_info, dict) or not sys_info.get("little_endian", False):
            raise TorchPickleError("only little-endian files are supported")
        state = _RestrictedUnpickler(file, storages).load()
        keys = _PlainUnpickler(file).load()
        for key in keys:
            storage = storages[key]
            (numel,) = struct.unpack("<q", file.read(8))
            raw = file.read(numel * storage.dtype.itemsize)
            if numel != storage.numel or len(raw) != numel * storage.dtype.itemsize:
                raise TorchPickleError(f"storage {key} is truncated")
            storage.data = np.frombuffer(raw, dtype=storage.dtype)
    if not isinstance(state, dict):
        raise TorchPickleError("the file does not hold a state dict")
    result: dict[str, npt.NDArray[Any]] = {}
    for name, value in state.items():
        if isinstance(value, _LazyTensor):
            result[str(name)] = value.materialize()
    return result

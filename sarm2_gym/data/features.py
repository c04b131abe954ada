"""Feature declarations and numpy <-> Arrow column conversion in LeRobot's conventions.

A feature is ``{"dtype": ..., "shape": [...], "names": ...}``:

* images: dtype ``"image"``, shape ``[H, W, 3]``, names ``["height", "width", "channels"]``;
  stored as a struct column ``{bytes: binary (PNG), path: string}`` (Hugging Face ``Image``),
  which round-trips losslessly;
* scalars (arrays of shape ``(T,)``): shape ``[1]``, a plain column. As in LeRobot, a ``(T, 1)``
  array is stored the same way and reads back as ``(T,)``;
* vectors ``(T, D)``: shape ``[D]``, a fixed-size list column (Hugging Face ``Sequence``);
  higher ranks nest fixed-size lists;
* strings: dtype ``"string"``, shape ``[1]``.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final

import numpy as np
import pyarrow as pa
from PIL import Image

from sarm2_gym.data.episode import ACTION_KEY, STATE_KEY

__all__ = [
    "IMAGE_NAMES",
    "arrow_type",
    "check_column_name",
    "column_from_arrow",
    "column_to_arrow",
    "decode_png",
    "default_names",
    "describe_mismatch",
    "encode_png",
    "feature_of",
    "hf_schema_metadata",
    "is_image",
    "schema_of",
]

IMAGE_NAMES: Final[list[str]] = ["height", "width", "channels"]

_ENCODE_THREADS: Final[int] = 4  # PNG-encoding threads for one column
_FRAMES_PER_THREAD: Final[int] = 16  # shorter columns are encoded on the calling thread

_ARMS: Final[tuple[str, ...]] = ("left", "right")
_STATE_PARTS: Final[tuple[str, ...]] = ("x", "y", "z", "roll", "pitch", "yaw", "gripper")
_ACTION_PARTS: Final[tuple[str, ...]] = ("dx", "dy", "dz", "droll", "dpitch", "dyaw", "gripper")

_NUMERIC_DTYPES: Final[frozenset[str]] = frozenset(
    {
        "bool",
        "int8",
        "int16",
        "int32",
        "int64",
        "uint8",
        "uint16",
        "uint32",
        "uint64",
        "float16",
        "float32",
        "float64",
    }
)


def check_column_name(key: str) -> None:
    """Raise ``ValueError`` for names LeRobot rejects (empty, or containing ``/``)."""
    if not key or "/" in key:
        raise ValueError(f"column name {key!r} is invalid (LeRobot forbids '/' in feature names)")


def is_image(feature: Mapping[str, Any]) -> bool:
    """Whether a feature holds camera frames (stored as images or video)."""
    return feature["dtype"] in ("image", "video")


def default_names(key: str, shape: list[int]) -> list[str] | None:
    """Dimension names for the bimanual robot's state and action, ``None`` for anything else."""
    if shape == [2 * len(_STATE_PARTS)]:
        if key == STATE_KEY:
            return [f"{arm}_{p}" for arm in _ARMS for p in _STATE_PARTS]
        if key == ACTION_KEY:
            return [f"{arm}_{p}" for arm in _ARMS for p in _ACTION_PARTS]
    return None


def feature_of(key: str, arr: np.ndarray) -> dict[str, Any]:
    """Infer the feature declaration of a per-frame column.

    Args:
        key: Column name; ``observation.images.*`` columns are images.
        arr: The column, leading dimension = frames.

    Raises:
        ValueError: For dtypes LeRobot cannot store (complex, objects that are not strings, ...).
    """
    if key.startswith("observation.images."):
        if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[-1] != 3:
            raise ValueError(f"image column {key!r} must be uint8 (T, H, W, 3), got {arr.shape}")
        return {"dtype": "image", "shape": list(arr.shape[1:]), "names": list(IMAGE_NAMES)}
    if arr.dtype.kind == "U" or (
        arr.dtype.kind == "O" and all(isinstance(v, str) for v in arr.reshape(-1))
    ):
        if arr.ndim != 1:
            raise ValueError(f"string column {key!r} must be 1-D, got shape {arr.shape}")
        return {"dtype": "string", "shape": [1], "names": None}
    dtype = arr.dtype.name
    if dtype not in _NUMERIC_DTYPES:
        raise ValueError(f"column {key!r} has dtype {arr.dtype}, which a dataset cannot store")
    shape = [int(s) for s in arr.shape[1:]] or [1]
    if shape == [1]:
        return {"dtype": dtype, "shape": [1], "names": None}
    if any(s == 0 for s in shape):
        raise ValueError(f"column {key!r} has an empty per-frame shape {arr.shape[1:]}")
    return {"dtype": dtype, "shape": shape, "names": default_names(key, shape)}


def describe_mismatch(
    key: str, declared: Mapping[str, Any], actual: Mapping[str, Any], *, names: bool = False
) -> str | None:
    """Return a sentence describing how two declarations of ``key`` differ, or ``None``."""
    diffs = [
        f"{field} {declared.get(field)!r} vs {actual.get(field)!r}"
        for field in ("dtype", "shape", *(("names",) if names else ()))
        if _normal(declared.get(field)) != _normal(actual.get(field))
    ]
    return f"{key!r}: " + ", ".join(diffs) if diffs else None


def _normal(value: Any) -> Any:
    # JSON gives lists where Python code may hold tuples.
    return list(value) if isinstance(value, tuple | list) else value


def _arrow_value_type(dtype: str) -> pa.DataType:
    if dtype == "string":
        return pa.string()
    if dtype == "bool":
        return pa.bool_()
    return pa.from_numpy_dtype(np.dtype(dtype))


def arrow_type(feature: Mapping[str, Any]) -> pa.DataType:
    """Arrow storage type of a feature (images as Hugging Face ``Image`` structs)."""
    if is_image(feature):
        return pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    typ = _arrow_value_type(str(feature["dtype"]))
    shape = [int(s) for s in feature["shape"]]
    if shape == [1]:
        return typ
    for size in reversed(shape):
        typ = pa.list_(typ, size)
    return typ


def schema_of(features: Mapping[str, Mapping[str, Any]]) -> pa.Schema:
    """Arrow schema of a data file, with Hugging Face ``datasets`` metadata attached."""
    fields = [pa.field(k, arrow_type(f)) for k, f in features.items() if f["dtype"] != "video"]
    return pa.schema(fields, metadata={b"huggingface": hf_schema_metadata(features)})


def _hf_feature(feature: Mapping[str, Any]) -> dict[str, Any]:
    if feature["dtype"] == "image":
        return {"_type": "Image"}
    hf: dict[str, Any] = {"dtype": str(feature["dtype"]), "_type": "Value"}
    shape = [int(s) for s in feature["shape"]]
    if shape == [1]:
        return hf
    for size in reversed(shape):
        hf = {"feature": hf, "length": size, "_type": "Sequence"}
    return hf


def hf_schema_metadata(features: Mapping[str, Mapping[str, Any]]) -> bytes:
    """The ``huggingface`` schema metadata, so ``datasets`` decodes image columns as images."""
    hf = {k: _hf_feature(f) for k, f in features.items() if f["dtype"] != "video"}
    return json.dumps({"info": {"features": hf}}).encode()


def encode_png(image: np.ndarray, compress_level: int = 1) -> bytes:
    """Encode an ``(H, W, 3)`` uint8 frame as PNG (lossless).

    Compression level 1 is several times faster than Pillow's default 6 for a few percent more
    bytes, which matters when recording three cameras at 10 Hz on a laptop CPU.
    """
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG", compress_level=compress_level)
    return buf.getvalue()


def decode_png(data: bytes) -> np.ndarray:
    """Decode an encoded image (PNG, or anything Pillow reads) to an ``(H, W, 3)`` uint8 array."""
    with Image.open(io.BytesIO(data)) as img:
        return np.asarray(img.convert("RGB"))


def _encode_frames(frames: np.ndarray, compress_level: int) -> list[bytes]:
    """PNG bytes of every frame, on a few threads for long columns.

    Pillow's encoder releases the GIL, and a recording pool's workers hand whole episodes to
    the one process that writes them: encoding there one frame after another capped recording
    at the speed of a single core whatever the number of workers.
    """
    threads = min(_ENCODE_THREADS, os.cpu_count() or 1, len(frames) // _FRAMES_PER_THREAD)
    if threads <= 1:
        return [encode_png(frame, compress_level) for frame in frames]
    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(lambda frame: encode_png(frame, compress_level), frames))


def column_to_arrow(
    arr: np.ndarray, feature: Mapping[str, Any], *, compress_level: int = 1
) -> pa.Array:
    """Convert one per-frame column to its Arrow storage (images are PNG-encoded here)."""
    if feature["dtype"] == "image":
        encoded = _encode_frames(arr, compress_level)
        paths = [f"frame-{i:06d}.png" for i in range(len(encoded))]
        return pa.StructArray.from_arrays(
            [pa.array(encoded, pa.binary()), pa.array(paths, pa.string())],
            names=["bytes", "path"],
        )
    typ = arrow_type(feature)
    if feature["dtype"] == "string":
        return pa.array([str(v) for v in arr], pa.string())
    shape = [int(s) for s in feature["shape"]]
    if shape == [1]:
        return pa.array(np.ascontiguousarray(arr).reshape(-1), typ)
    values: pa.Array = pa.array(np.ascontiguousarray(arr).reshape(-1), _leaf_type(typ))
    for size in reversed(shape):
        values = pa.FixedSizeListArray.from_arrays(values, size)
    return values


def _leaf_type(typ: pa.DataType) -> pa.DataType:
    """Innermost value type of a (possibly nested) list type."""
    while pa.types.is_list(typ) or pa.types.is_fixed_size_list(typ):
        typ = typ.value_type
    return typ


def column_from_arrow(
    col: pa.ChunkedArray | pa.Array, feature: Mapping[str, Any], *, decode_images: bool = True
) -> np.ndarray:
    """Convert an Arrow column back to numpy.

    Images decode to ``(T, H, W, 3)`` uint8, or with ``decode_images=False`` to an object array
    of the encoded PNG bytes. Vector columns come back as ``(T, *shape)``; the Arrow type, not
    the declared shape, decides the rank, so files written by other tools read correctly.
    """
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
    length = len(col)
    if pa.types.is_struct(col.type):  # Hugging Face Image: {bytes, path}
        blobs = col.field("bytes").to_pylist()
        if any(b is None for b in blobs):
            raise ValueError("image column holds frames stored by path only; not supported")
        if not decode_images:
            out = np.empty(length, dtype=object)
            out[:] = blobs
            return out
        if length == 0:
            h, w, c = (int(s) for s in feature["shape"])
            return np.zeros((0, h, w, c), np.uint8)
        return np.stack([decode_png(b) for b in blobs])
    if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
        return np.array(col.to_pylist(), dtype=str)
    inner = []
    values = col
    while pa.types.is_fixed_size_list(values.type) or pa.types.is_list(values.type):
        if pa.types.is_fixed_size_list(values.type):
            inner.append(values.type.list_size)
        else:  # variable lists written by other tools: take the declared size
            sizes = values.value_lengths().to_numpy(zero_copy_only=False)
            inner.append(int(sizes[0]) if len(sizes) else 0)
        values = values.flatten()
    if values.null_count:
        raise ValueError(f"column of type {col.type} holds nulls")
    flat = values.to_numpy(zero_copy_only=False)
    return flat.reshape(length, *inner) if inner else flat

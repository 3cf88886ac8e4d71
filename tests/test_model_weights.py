"""The static model's weights are mapped from their file, read-only, and checked as they are."""

from __future__ import annotations

import json
import mmap
import re
import struct
from pathlib import Path

import numpy as np
import pytest

from aggregator.match.embedding import STATIC_MODEL, map_weights

WEIGHTS = STATIC_MODEL / "model.safetensors"


def test_the_mapped_matrix_is_what_safetensors_reads() -> None:
    from safetensors.numpy import load_file

    mapped = map_weights(WEIGHTS)
    loaded = load_file(str(WEIGHTS))["embeddings"]
    assert mapped.dtype == np.float16 and mapped.shape == loaded.shape
    assert np.array_equal(mapped, loaded)


def test_the_matrix_is_a_read_only_view_of_the_file() -> None:
    mapped = map_weights(WEIGHTS)
    assert not mapped.flags.writeable
    base: object = mapped
    while isinstance(base, np.ndarray):
        base = base.base
    if isinstance(base, memoryview):
        base = base.obj
    assert isinstance(base, mmap.mmap)  # file pages, not a copy in the heap
    with pytest.raises(ValueError, match="read-only"):
        mapped[0, 0] = 1.0


def _file(tmp_path: Path, header: object, data: bytes = b"", length: int | None = None) -> Path:
    text = json.dumps(header).encode()
    path = tmp_path / "model.safetensors"
    size = len(text) if length is None else length
    path.write_bytes(struct.pack("<Q", size) + text + data)
    return path


def _tensor(shape: list[int], offsets: list[int], dtype: str = "F16") -> dict[str, object]:
    return {"embeddings": {"dtype": dtype, "shape": shape, "data_offsets": offsets}}


def test_a_small_well_formed_file_is_read(tmp_path: Path) -> None:
    rows = np.arange(6, dtype=np.float16).reshape(3, 2)
    path = _file(tmp_path, _tensor([3, 2], [0, 12]), rows.tobytes())
    assert np.array_equal(map_weights(path), rows)


@pytest.mark.parametrize(
    ("header", "data", "length", "says"),
    [
        ({}, b"", 4_000, "the header claims 4000 bytes"),
        ({"other": {}}, b"", None, "no 'embeddings' tensor"),
        (_tensor([3, 2], [0, 12], "F32"), bytes(12), None, "'embeddings' is not a float16 matrix"),
        (_tensor([3], [0, 6]), bytes(6), None, "'embeddings' is not a float16 matrix"),
        (_tensor([3, 2], [0, -12]), bytes(12), None, "'embeddings' is not a float16 matrix"),
        (_tensor([3, 2], [0, 10]), bytes(12), None, "'embeddings' does not fit the file"),
        (_tensor([3, 2], [0, 12]), bytes(6), None, "'embeddings' does not fit the file"),
    ],
)
def test_a_damaged_file_is_named_with_what_is_wrong(
    tmp_path: Path, header: object, data: bytes, length: int | None, says: str
) -> None:
    path = _file(tmp_path, header, data, length)
    with pytest.raises(ValueError, match=re.escape(f"model.safetensors: {says}")):
        map_weights(path)


def test_a_file_too_short_for_a_header_is_named(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    path.write_bytes(b"\x01\x02")
    with pytest.raises(ValueError, match="2 bytes, too short"):
        map_weights(path)

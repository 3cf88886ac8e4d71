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


def test_the_mapped_rows_and_scales_are_what_safetensors_reads() -> None:
    from safetensors.numpy import load_file

    weights = map_weights(WEIGHTS)
    loaded = load_file(str(WEIGHTS))
    assert weights.rows.dtype == np.int8 and weights.scales.dtype == np.float32
    assert np.array_equal(weights.rows, loaded["embeddings"])
    assert np.array_equal(weights.scales, loaded["scales"])
    assert weights.rows.shape == (weights.scales.shape[0], 256)
    # Each row uses the whole signed range its scale was chosen for (scripts/build_static_model).
    peaks = np.abs(weights.rows.astype(np.int16)).max(axis=1)
    assert set(np.unique(peaks)) <= {0, 127}


def test_the_arrays_are_read_only_views_of_the_file() -> None:
    weights = map_weights(WEIGHTS)
    for array in (weights.rows, weights.scales):
        assert not array.flags.writeable
        base: object = array
        while isinstance(base, np.ndarray):
            base = base.base
        if isinstance(base, memoryview):
            base = base.obj
        assert isinstance(base, mmap.mmap)  # file pages, not a copy in the heap
    with pytest.raises(ValueError, match="read-only"):
        weights.rows[0, 0] = 1


def _file(tmp_path: Path, header: object, data: bytes = b"", length: int | None = None) -> Path:
    text = json.dumps(header).encode()
    path = tmp_path / "model.safetensors"
    size = len(text) if length is None else length
    path.write_bytes(struct.pack("<Q", size) + text + data)
    return path


def _tensors(
    shape: list[int], offsets: list[int], dtype: str = "I8", scales: list[int] | None = None
) -> dict[str, object]:
    """A header of ``embeddings`` as given and three float32 ``scales`` after 6 bytes of rows
    (``scales``: their shape instead)."""
    return {
        "embeddings": {"dtype": dtype, "shape": shape, "data_offsets": offsets},
        "scales": {"dtype": "F32", "shape": scales or [3], "data_offsets": [6, 18]},
    }


def test_a_small_well_formed_file_is_read(tmp_path: Path) -> None:
    rows = np.arange(-3, 3, dtype=np.int8).reshape(3, 2)
    scales = np.array([0.5, 1.0, 2.0], dtype=np.float32)
    path = _file(tmp_path, _tensors([3, 2], [0, 6]), rows.tobytes() + scales.tobytes())
    weights = map_weights(path)
    assert np.array_equal(weights.rows, rows) and np.array_equal(weights.scales, scales)


@pytest.mark.parametrize(
    ("header", "data", "length", "says"),
    [
        ({}, b"", 4_000, "the header claims 4000 bytes"),
        ([], b"", None, "the header is not a table of tensors"),
        ({"other": {}}, b"", None, "no 'embeddings' tensor"),
        (_tensors([3, 2], [0, 6], "F16"), bytes(18), None, "'embeddings' is not a matrix of"),
        (_tensors([6], [0, 6]), bytes(18), None, "'embeddings' is not a matrix of signed bytes"),
        (_tensors([3, 2], [0, -6]), bytes(18), None, "'embeddings' is not a matrix of"),
        (_tensors([3, 2], [0, 5]), bytes(18), None, "'embeddings' does not fit the file"),
        (_tensors([3, 2], [0, 6]), bytes(12), None, "'scales' does not fit the file"),
        (_tensors([3, 2], [0, 6], scales=[3, 1]), bytes(18), None, "'scales' is not a float32"),
        (
            {"embeddings": {"dtype": "I8", "shape": [3, 2], "data_offsets": [0, 6]}},
            bytes(18),
            None,
            "no 'scales' tensor",
        ),
        (
            {
                "embeddings": {"dtype": "I8", "shape": [2, 3], "data_offsets": [0, 6]},
                "scales": {"dtype": "F32", "shape": [3], "data_offsets": [6, 18]},
            },
            bytes(18),
            None,
            "3 scales for 2 rows",
        ),
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

"""The meaning signal's sentence vectors: the static model shipped with the package, by default.

``settings.semantic`` chooses the embedder (:func:`load_embedder`):

- ``static`` (default): ``static_model/``, a static model distilled from all-MiniLM-L6-v2
  (``scripts/build_static_model.py``; provenance and licence in that folder). A text's vector is
  the mean of its tokens' rows, unit length: numpy and the ``tokenizers`` library only, about
  7.6 MB of weights, tens of thousands of headlines a second on one core.
- ``minilm``: the full transformer of the ``semantic`` extra (needs torch).
- ``off``: no meaning signal; the matcher uses words alone.

Nothing here downloads anything.
"""

from __future__ import annotations

import importlib.util
import json
import math
import mmap
import struct
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args

from aggregator.exceptions import AggregatorError
from aggregator.match.semantic import Embedder, SemanticUnavailable, load_minilm
from aggregator.types import SemanticSignal

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray
    from tokenizers import Tokenizer

SEMANTIC_SIGNALS: tuple[SemanticSignal, ...] = get_args(SemanticSignal)

STATIC_MODEL = Path(__file__).resolve().parent / "static_model"
MODEL_FILES = ("tokenizer.json", "model.safetensors")
# Tokens of one text that count: the lead of a summary is a few hundred characters, and the
# model was distilled from a transformer that reads at most 512 tokens.
MAX_TOKENS = 512


class ModelUnavailable(AggregatorError):
    """The static model's files are missing or unreadable (a broken install)."""


@dataclass(frozen=True, slots=True)
class Weights:
    """The model's token rows as signed bytes and a scale per row: token ``i``'s vector is
    ``rows[i] * scales[i]`` (``scripts/build_static_model.py`` makes them from float16 rows)."""

    rows: NDArray[np.int8]
    scales: NDArray[np.float32]


class StaticEmbedder:
    """Unit vectors of texts from the static model: the mean of their tokens' rows.

    The files are checked when it is made and read at the first call: a service with nothing
    to match yet (an empty feed list, a quiet start) holds neither the tokenizer (about 11 MB)
    nor any page of the weights.
    """

    def __init__(self, folder: Path = STATIC_MODEL) -> None:
        self._folder = folder
        missing = [name for name in MODEL_FILES if not (folder / name).is_file()]
        if missing:
            raise ModelUnavailable(
                f"cannot read the static meaning model in {folder}: {', '.join(missing)} missing"
            )
        self._lock = threading.Lock()
        self._loaded: tuple[Tokenizer, Weights, int | None] | None = None

    def _model(self) -> tuple[Tokenizer, Weights, int | None]:
        with self._lock:
            if self._loaded is None:
                self._loaded = _read_model(self._folder)
            return self._loaded

    @property
    def dimensions(self) -> int:
        """Length of every vector."""
        return int(self._model()[1].rows.shape[1])

    def __call__(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """One unit vector (a row) per text; a text without known tokens gets zeros."""
        import numpy as np  # with the model, at the first text (see semantic.py)

        tokenizer, weights, unknown = self._model()
        encodings = tokenizer.encode_batch_fast(list(texts), add_special_tokens=False)
        rows, scales = weights.rows, weights.scales
        out = np.zeros((len(encodings), int(rows.shape[1])), dtype=np.float32)
        for row, encoding in enumerate(encodings):
            ids = [i for i in encoding.ids if i != unknown][:MAX_TOKENS]
            if ids:
                # The scaled rows summed in one product; the mean's length goes with the norm.
                out[row] = scales[ids] @ rows[ids].astype(np.float32)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        norms[norms == 0.0] = 1.0
        unit: NDArray[np.float32] = out / norms
        return unit


def _read_model(folder: Path) -> tuple[Tokenizer, Weights, int | None]:
    """The tokenizer, the embedding rows and the unknown token's id (None without one)."""
    from tokenizers import Tokenizer

    try:
        tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        weights = map_weights(folder / "model.safetensors")
    # tokenizers reports a damaged file as a bare Exception: every failure here is the
    # install's, named with the folder.
    except Exception as exc:
        raise ModelUnavailable(f"cannot read the static meaning model in {folder}: {exc}") from exc
    name = getattr(tokenizer.model, "unk_token", None)
    # The unknown token says nothing about a text's meaning (model2vec drops it too).
    return tokenizer, weights, tokenizer.token_to_id(name) if name else None


def map_weights(path: Path) -> Weights:
    """The model's rows and scales, mapped read-only from the file, not read into memory.

    Only the rows of tokens the texts use are ever paged in, and the kernel may drop them again
    under memory pressure (they are clean file pages). The file is in the safetensors layout
    (an 8-byte little-endian header length, a JSON header naming each tensor's dtype, shape and
    byte range, then the data), which is read here directly: the library copies every tensor
    into memory.
    """

    with path.open("rb") as file:
        # The mapping keeps its own handle on the file: the arrays hold it open.
        mapped = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
    size = len(mapped)
    if size < 8:
        raise ValueError(f"{path.name}: {size} bytes, too short for a safetensors header")
    (length,) = struct.unpack_from("<Q", mapped, 0)
    if length > size - 8:
        raise ValueError(f"{path.name}: the header claims {length} bytes of {size - 8}")
    header = json.loads(mapped[8 : 8 + length])
    if not isinstance(header, dict):
        raise ValueError(f"{path.name}: the header is not a table of tensors")
    rows = _tensor(mapped, 8 + length, header, path.name, "embeddings", _MATRIX_OF_BYTES)
    scales = _tensor(mapped, 8 + length, header, path.name, "scales", _FLOAT32_VECTOR)
    if scales.shape[0] != rows.shape[0]:
        raise ValueError(f"{path.name}: {scales.shape[0]} scales for {rows.shape[0]} rows")
    return Weights(rows, scales)


@dataclass(frozen=True, slots=True)
class _Kind:
    """A tensor the model file holds: its safetensors dtype, numpy dtype, size and dimensions."""

    dtype: str
    numpy: str
    itemsize: int
    dimensions: int
    says: str


_MATRIX_OF_BYTES = _Kind("I8", "int8", 1, 2, "a matrix of signed bytes")
_FLOAT32_VECTOR = _Kind("F32", "float32", 4, 1, "a float32 vector")


def _tensor(
    mapped: mmap.mmap, data: int, header: dict[str, object], file: str, name: str, kind: _Kind
) -> NDArray[Any]:
    """The tensor ``name`` of the file, a read-only view of the mapping (``data``: where the
    data begins), checked to be ``kind`` and to lie inside the file."""
    import numpy as np

    tensor = header.get(name)
    if not isinstance(tensor, dict):
        raise ValueError(f"{file}: no {name!r} tensor")
    dims = _sizes(tensor.get("shape"), kind.dimensions)
    offsets = _sizes(tensor.get("data_offsets"), 2)
    if tensor.get("dtype") != kind.dtype or dims is None or offsets is None:
        raise ValueError(f"{file}: {name!r} is not {kind.says}")
    begin, end = offsets
    count = math.prod(dims)
    if end - begin != count * kind.itemsize or data + end > len(mapped):
        raise ValueError(f"{file}: {name!r} does not fit the file")
    values = np.frombuffer(mapped, dtype=kind.numpy, count=count, offset=data + begin)
    return values.reshape(dims)


def _sizes(value: object, count: int) -> tuple[int, ...] | None:
    """``value`` as ``count`` non-negative integers (a shape or a byte range), else None."""
    if not isinstance(value, list) or len(value) != count:
        return None
    if all(isinstance(v, int) and v >= 0 for v in value):
        return tuple(value)
    return None


def check_available(kind: SemanticSignal) -> None:
    """Raise ``SemanticUnavailable`` naming the setting when ``kind`` needs what is missing."""
    if kind == "minilm" and importlib.util.find_spec("sentence_transformers") is None:
        raise SemanticUnavailable(
            "settings.semantic: minilm needs the semantic extra "
            "(pip install 'aggregator[semantic]'); 'static' needs nothing more"
        )


@cache
def load_embedder(kind: SemanticSignal) -> Embedder | None:
    """The embedder ``settings.semantic`` names; None for ``off``. Loaded once per process:
    every rebuild of the match index reuses it."""
    if kind == "off":
        return None
    if kind == "minilm":
        return load_minilm()
    return StaticEmbedder()

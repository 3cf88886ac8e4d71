"""The meaning signal's sentence vectors: the static model shipped with the package, by default.

``settings.semantic`` chooses the embedder (:func:`load_embedder`):

- ``static`` (default): ``static_model/``, a static model distilled from all-MiniLM-L6-v2
  (``scripts/build_static_model.py``; provenance and licence in that folder). A text's vector is
  the mean of its tokens' rows, unit length: numpy and the ``tokenizers`` library only, about
  15 MB of weights, tens of thousands of headlines a second on one core.
- ``minilm``: the full transformer of the ``semantic`` extra (needs torch).
- ``off``: no meaning signal; the matcher uses words alone.

Nothing here downloads anything.
"""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, get_args

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


class StaticEmbedder:
    """Unit vectors of texts from the static model: the mean of their tokens' rows.

    The files are checked when it is made and read at the first call: a service with nothing
    to match yet (an empty feed list, a quiet start) does not hold the model's ~30 MB.
    """

    def __init__(self, folder: Path = STATIC_MODEL) -> None:
        self._folder = folder
        missing = [name for name in MODEL_FILES if not (folder / name).is_file()]
        if missing:
            raise ModelUnavailable(
                f"cannot read the static meaning model in {folder}: {', '.join(missing)} missing"
            )
        self._lock = threading.Lock()
        self._loaded: tuple[Tokenizer, NDArray[np.float16], int | None] | None = None

    def _model(self) -> tuple[Tokenizer, NDArray[np.float16], int | None]:
        with self._lock:
            if self._loaded is None:
                self._loaded = _read_model(self._folder)
            return self._loaded

    @property
    def dimensions(self) -> int:
        """Length of every vector."""
        return int(self._model()[1].shape[1])

    def __call__(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """One unit vector (a row) per text; a text without known tokens gets zeros."""
        import numpy as np  # with the model, at the first text (see semantic.py)

        tokenizer, weights, unknown = self._model()
        encodings = tokenizer.encode_batch_fast(list(texts), add_special_tokens=False)
        out = np.zeros((len(encodings), int(weights.shape[1])), dtype=np.float32)
        for row, encoding in enumerate(encodings):
            ids = [i for i in encoding.ids if i != unknown][:MAX_TOKENS]
            if ids:
                out[row] = weights[ids].mean(axis=0, dtype=np.float32)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        norms[norms == 0.0] = 1.0
        unit: NDArray[np.float32] = out / norms
        return unit


def _read_model(folder: Path) -> tuple[Tokenizer, NDArray[np.float16], int | None]:
    """The tokenizer, the embedding rows and the unknown token's id (None without one)."""
    from safetensors.numpy import load_file
    from tokenizers import Tokenizer

    try:
        tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        weights: NDArray[np.float16] = load_file(str(folder / "model.safetensors"))["embeddings"]
    # tokenizers reports a damaged file as a bare Exception: every failure here is the
    # install's, named with the folder.
    except Exception as exc:
        raise ModelUnavailable(f"cannot read the static meaning model in {folder}: {exc}") from exc
    name = getattr(tokenizer.model, "unk_token", None)
    # The unknown token says nothing about a text's meaning (model2vec drops it too).
    return tokenizer, weights, tokenizer.token_to_id(name) if name else None


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

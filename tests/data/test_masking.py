import pickle
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from clover_pl.data.masking import STOP_WORDS, TextMasker
from clover_pl.data.pos_tagging import LexiconTagger, SpacyTagger, default_tagger, spacy_available
from clover_pl.data.pos_units import CandidateUnits, verb_phrase_spans
from clover_pl.data.text import load_tokenizer
from clover_pl.data.video_masking import BlockMaskGenerator

VOCAB = str(Path(__file__).resolve().parents[1] / "assets" / "vocab.txt")
FUNCTION_WORDS = {"a", "the", "on", "in", "of", "and", "with", "to", "two", "is", "are", "what", "how", "many", "do"}
CAPTIONS = [
    "a man is running on the beach",
    "two red circles moving left",
    "a dog plays with balls on the beach",
    "the man played guitar and jumps",
    "a woman walks across the screen",
    "circles and squares are bouncing and rotating quickly",
    "a large purple triangle stays still in the background",
    "a cat walking on the beach",
    "the video shows two objects moving fast",
]


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(VOCAB)


def semantic_masker(tokenizer, **kwargs) -> TextMasker:
    return TextMasker(tokenizer, max_length=kwargs.pop("max_length", 24), tagger=LexiconTagger(), **kwargs)


def words_of(tokenizer, input_ids: torch.Tensor) -> list[list[int]]:
    """Whole-word position groups, independently of the masker: ## pieces join the word before them."""
    tokens = tokenizer.convert_ids_to_tokens(input_ids.tolist())
    specials = {tokenizer.cls_token, tokenizer.sep_token, tokenizer.pad_token}
    words: list[list[int]] = []
    for position, token in enumerate(tokens):
        if token in specials:
            continue
        if token.startswith("##"):
            words[-1].append(position)
        else:
            words.append([position])
    return words


def text_of(tokenizer, input_ids: torch.Tensor, word: list[int]) -> str:
    return "".join(tokenizer.convert_ids_to_tokens([int(input_ids[p]) for p in word])).replace("##", "")


# ----- part-of-speech tagging -----


def candidate_words(words: list[str]) -> tuple[set[str], set[str]]:
    units = LexiconTagger().candidate_units(words)
    return {words[i] for i in units.nouns}, {words[i] for i in units.verbs}


@pytest.mark.parametrize(
    ("caption", "nouns", "verbs"),
    [
        ("a man is running on the beach", {"man", "beach"}, {"is", "running"}),
        ("two red circles moving left", {"circles"}, {"moving"}),
        ("the video shows circles", {"video", "circles"}, {"shows"}),
        ("a woman cooks food in the kitchen", {"woman", "food", "kitchen"}, {"cooks"}),
        ("people play soccer", {"people", "soccer"}, {"play"}),
        ("shows a man playing guitar", {"man", "guitar"}, {"shows", "playing"}),
        ("the ball is red", {"ball"}, set()),
        ("a dog jumps and runs", {"dog"}, {"jumps", "runs"}),
        ("the man has a dog", {"man", "dog"}, {"has"}),
        ("kids are playing in the water", {"kids", "water"}, {"are", "playing"}),
        ("what color is the ball", {"color", "ball"}, set()),
        ("what color does the ball have", {"color", "ball"}, {"have"}),
        ("how many objects are in the video", {"objects", "video"}, set()),
    ],
)
def test_lexicon_tagger_finds_nouns_and_verb_phrases(caption: str, nouns: set[str], verbs: set[str]) -> None:
    assert candidate_words(caption.split()) == (nouns, verbs)


def test_lexicon_tagger_tags_auxiliaries_and_modifiers() -> None:
    tags = LexiconTagger().tag(["a", "man", "is", "running", "on", "the", "beach"])
    assert tags == ["DET", "NOUN", "AUX", "VERB", "ADP", "DET", "NOUN"]
    assert LexiconTagger().tag(["two", "red", "circles", "moving", "left"]) == ["NUM", "ADJ", "NOUN", "VERB", "ADV"]


@pytest.mark.parametrize("caption", [*CAPTIONS, "the ball is red", "what is on the left", "there is a dog"])
def test_function_words_are_never_candidates(caption: str) -> None:
    words = caption.split()
    nouns, verbs = candidate_words(words)
    auxiliary_in_phrase = {"is", "are"} & verbs  # "is running": AUX inside a verb phrase, as with spaCy
    assert not (nouns | verbs - auxiliary_in_phrase) & FUNCTION_WORDS
    for word in auxiliary_in_phrase:
        assert words[words.index(word) + 1] in verbs


def test_verb_phrase_spans_include_overlapping_matches() -> None:
    assert verb_phrase_spans(["DET", "NOUN", "AUX", "VERB"]) == [(2, 4), (3, 4)]
    assert verb_phrase_spans(["VERB", "ADV", "AUX", "VERB"]) == [(0, 1), (0, 4), (1, 4), (2, 4), (3, 4)]
    assert verb_phrase_spans(["AUX", "ADJ", "NOUN"]) == []
    assert LexiconTagger().candidate_units(["a", "man", "is", "running"]) == CandidateUnits([1], [2, 3, 3])


def test_default_tagger_choices(tokenizer) -> None:
    assert isinstance(default_tagger("lexicon"), LexiconTagger)
    expected = SpacyTagger if spacy_available() else LexiconTagger
    assert isinstance(default_tagger(), expected)
    assert isinstance(TextMasker(tokenizer).tagger, expected)
    with pytest.raises(ValueError, match="prefer"):
        default_tagger("nltk")


def test_default_tagger_spacy_without_spacy_says_how_to_install() -> None:
    if spacy_available():
        pytest.skip("spaCy and en_core_web_sm are installed")
    with pytest.raises(ImportError, match="spacy download en_core_web_sm"):
        default_tagger("spacy")


def test_spacy_tagger_pickles_without_its_model() -> None:
    tagger = pickle.loads(pickle.dumps(SpacyTagger("en_core_web_sm")))
    assert tagger.model == "en_core_web_sm"
    assert tagger._nlp is None


def test_spacy_tagger_maps_tokens_and_matches_to_words() -> None:
    # A stand-in for spaCy: "cannot" splits into "can" + "not", and the matcher repeats a span.
    tokens = [("dogs", 0, "NOUN"), ("can", 5, "AUX"), ("not", 8, "PART"), ("swim", 12, "VERB")]
    tagger = SpacyTagger()
    tagger._nlp = lambda text: [SimpleNamespace(text=t, idx=i, pos_=pos) for t, i, pos in tokens]
    tagger._matcher = lambda doc: [(0, 3, 4), (0, 1, 4), (0, 3, 4)]
    assert tagger.tag(["dogs", "cannot", "swim"]) == ["NOUN", "PART", "VERB"]
    assert tagger.candidate_units(["dogs", "cannot", "swim"]) == CandidateUnits([0], [1, 2, 2])


def test_spacy_tagger_matches_clover_units() -> None:
    pytest.importorskip("spacy")
    if not spacy_available():
        pytest.skip("en_core_web_sm is not installed")
    words = ["a", "man", "is", "running", "on", "the", "beach"]
    units = SpacyTagger().candidate_units(words)
    assert {words[i] for i in units.nouns} == {"man", "beach"}
    assert {words[i] for i in units.verbs} == {"is", "running"}


# ----- text masking -----


def test_semantic_masking_follows_the_spec(tokenizer) -> None:
    tagger = LexiconTagger()
    for seed in range(40):
        masker = semantic_masker(tokenizer, seed=seed)
        for caption in CAPTIONS:
            out = masker(caption)
            full = tokenizer(caption, max_length=24, truncation=True, padding="max_length")["input_ids"]
            assert out["input_ids"].tolist() == full
            chosen = out["mlm_labels"] != -100
            assert torch.equal(out["mlm_labels"][chosen], out["input_ids"][chosen])
            assert torch.equal(out["masked_input_ids"][~chosen], out["input_ids"][~chosen])
            assert not chosen[out["attention_mask"] == 0].any()  # padding never chosen

            words = words_of(tokenizer, out["input_ids"])
            texts = [text_of(tokenizer, out["input_ids"], word) for word in words]
            units = tagger.candidate_units(texts)
            candidates = [*units.nouns, *units.verbs]
            chosen_words = set()
            for index, word in enumerate(words):
                flags = chosen[word]
                assert flags.all() or not flags.any(), f"{caption!r}: word {texts[index]!r} partly masked"
                if flags.all():
                    chosen_words.add(index)
            assert chosen_words <= set(candidates)
            expected = min(max(1, round(0.3 * len(candidates))), len(set(candidates)))
            assert len(chosen_words) == expected


def test_multi_piece_words_are_masked_whole(tokenizer) -> None:
    caption = "circles and squares played"  # circle ##s, square ##s, play ##ed
    seen_whole = 0
    for seed in range(30):
        out = TextMasker(tokenizer, max_length=12, tagger=LexiconTagger(), probability=0.9, seed=seed)(caption)
        chosen = (out["mlm_labels"] != -100).tolist()
        for first, second in ((1, 2), (4, 5), (6, 7)):
            assert chosen[first] == chosen[second]
            seen_whole += chosen[first]
    assert seen_whole > 0


@pytest.mark.parametrize("caption", ["", "   ", "the a of and", "? . ,", "what is it"])
def test_captions_without_nouns_or_verbs_stay_unmasked(tokenizer, caption: str) -> None:
    out = semantic_masker(tokenizer, seed=0)(caption)
    assert torch.equal(out["masked_input_ids"], out["input_ids"])
    assert (out["mlm_labels"] == -100).all()


def test_unknown_words_are_tagged_but_never_chosen(tokenizer) -> None:
    seen: list[list[str]] = []

    class RecordingTagger:
        def candidate_units(self, words):
            seen.append(list(words))
            return CandidateUnits(list(range(len(words))), [])

    masker = TextMasker(tokenizer, max_length=12, tagger=RecordingTagger(), probability=1.0, seed=0)
    out = masker("A man on a Surfboard")
    assert seen == [["a", "man", "on", "a", "surfboard"]]
    unknown = out["input_ids"] == tokenizer.unk_token_id
    assert unknown.any()
    assert (out["mlm_labels"][unknown] == -100).all()
    assert (out["mlm_labels"][1:5] != -100).all()


def test_bert_corruption_split_is_80_10_10(tokenizer) -> None:
    masker = semantic_masker(tokenizer, seed=0, probability=1.0)
    mask = replaced = kept = 0
    special = set(tokenizer.all_special_ids)
    for _ in range(60):
        for caption in CAPTIONS:
            out = masker(caption)
            chosen = out["mlm_labels"] != -100
            corrupted, original = out["masked_input_ids"][chosen], out["input_ids"][chosen]
            mask += int((corrupted == tokenizer.mask_token_id).sum())
            kept += int((corrupted == original).sum())
            others = corrupted[(corrupted != tokenizer.mask_token_id) & (corrupted != original)]
            replaced += others.numel()
            assert not set(others.tolist()) & special
    total = mask + replaced + kept
    assert total > 2000
    # Expected 0.8 / ~0.099 / ~0.101 (a random id can equal the original); 0.03 is > 6 standard deviations here.
    assert mask / total == pytest.approx(0.8, abs=0.03)
    assert replaced / total == pytest.approx(0.1, abs=0.03)
    assert kept / total == pytest.approx(0.1, abs=0.03)


def test_random_mode_masks_tokens_at_the_given_rate(tokenizer) -> None:
    masker = TextMasker(tokenizer, max_length=24, mode="random", probability=0.3, seed=0)
    assert masker.tagger is None
    vocabulary = tokenizer.get_vocab()
    stop_ids = {vocabulary[word] for word in STOP_WORDS if word in vocabulary}
    excluded = set(tokenizer.all_special_ids) | stop_ids
    chosen_count = eligible_count = 0
    for _ in range(60):
        for caption in CAPTIONS:
            out = masker(caption)
            chosen = out["mlm_labels"] != -100
            assert not set(out["input_ids"][chosen].tolist()) & excluded
            eligible = [token not in excluded for token in out["input_ids"].tolist()]
            eligible_count += sum(eligible)
            chosen_count += int(chosen.sum())
    assert chosen_count / eligible_count == pytest.approx(0.3, abs=0.03)


def test_whole_word_mode_skips_stop_words_and_punctuation(tokenizer) -> None:
    any_chosen = False
    for seed in range(30):
        masker = TextMasker(tokenizer, max_length=24, mode="whole_word", seed=seed)
        for caption in [*CAPTIONS, "a man , the dog ."]:
            out = masker(caption)
            chosen = out["mlm_labels"] != -100
            candidates = 0
            for word in words_of(tokenizer, out["input_ids"]):
                text = text_of(tokenizer, out["input_ids"], word)
                flags = chosen[word]
                assert flags.all() or not flags.any()
                if text not in STOP_WORDS and text.isalpha():
                    candidates += 1
                else:
                    assert not flags.any(), text
            # The budget counts WordPieces, as in the original code.
            assert int(chosen.sum()) <= max(1, round(0.3 * candidates))
            any_chosen |= bool(chosen.any())
    assert any_chosen


def test_truncation_keeps_cls_and_sep(tokenizer) -> None:
    masker = semantic_masker(tokenizer, max_length=12, seed=0)
    out = masker(" ".join(["a man is running on the beach"] * 20))
    ids = out["input_ids"]
    assert ids.shape == (12,)
    assert ids[0] == tokenizer.cls_token_id
    assert ids[-1] == tokenizer.sep_token_id
    assert (out["attention_mask"] == 1).all()
    assert out["masked_input_ids"][0] == tokenizer.cls_token_id
    assert out["masked_input_ids"][-1] == tokenizer.sep_token_id
    assert all(value.dtype == torch.long and value.shape == (12,) for value in out.values())


def test_errors(tokenizer) -> None:
    with pytest.raises(ValueError, match="semantic, whole_word, random"):
        TextMasker(tokenizer, mode="span")
    with pytest.raises(ValueError, match="probability"):
        TextMasker(tokenizer, mode="random", probability=1.5)
    masker = TextMasker(tokenizer, mode="random")
    with pytest.raises(ValueError, match="str"):
        masker(None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="str"):
        masker(["a caption"])  # type: ignore[arg-type]


def test_same_seed_same_masks_and_pickle_round_trip(tokenizer) -> None:
    first, second = semantic_masker(tokenizer, seed=3), semantic_masker(tokenizer, seed=3)
    first("warm up the generator")
    second("warm up the generator")
    copy = pickle.loads(pickle.dumps(first))
    outputs = [[masker(caption) for caption in CAPTIONS * 3] for masker in (first, second, copy)]
    for a, b, c in zip(*outputs, strict=True):
        for key in a:
            assert torch.equal(a[key], b[key])
            assert torch.equal(a[key], c[key])
    other = semantic_masker(tokenizer, seed=4)
    other_labels = [other(caption)["mlm_labels"] for caption in CAPTIONS * 3]
    assert any(not torch.equal(a, out["mlm_labels"]) for a, out in zip(other_labels, outputs[0], strict=True))


def test_workers_reseed_from_worker_info(tokenizer, monkeypatch: pytest.MonkeyPatch) -> None:
    def masks_in_worker(worker_id: int, worker_seed: int) -> list[list[int]]:
        info = SimpleNamespace(id=worker_id, seed=worker_seed)
        monkeypatch.setattr(torch.utils.data, "get_worker_info", lambda: info)
        masker = pickle.loads(pickle.dumps(semantic_masker(tokenizer, seed=0)))
        return [masker(caption)["mlm_labels"].tolist() for caption in CAPTIONS * 2]

    assert masks_in_worker(0, 100) == masks_in_worker(0, 100)
    assert masks_in_worker(0, 100) != masks_in_worker(1, 101)
    monkeypatch.setattr(torch.utils.data, "get_worker_info", lambda: None)
    main = semantic_masker(tokenizer, seed=0)
    assert [main(caption)["mlm_labels"].tolist() for caption in CAPTIONS * 2] != masks_in_worker(0, 100)


# ----- block masks for video -----


def largest_component(mask: torch.Tensor) -> int:
    cells = {tuple(cell) for cell in mask.nonzero().tolist()}
    best = 0
    while cells:
        stack, size = [cells.pop()], 0
        while stack:
            row, column = stack.pop()
            size += 1
            for neighbour in ((row + 1, column), (row - 1, column), (row, column + 1), (row, column - 1)):
                if neighbour in cells:
                    cells.remove(neighbour)
                    stack.append(neighbour)
        best = max(best, size)
    return best


@pytest.mark.parametrize(
    ("grid", "num_masked", "min_block"),
    [((7, 7), 10, 4), ((7, 7), 0, 4), ((4, 4), 16, 4), ((3, 5), 7, 4), ((2, 2), 3, 4), ((8, 6), 30, 1)],
)
def test_block_mask_has_exactly_num_masked_cells(grid, num_masked, min_block) -> None:
    generator = BlockMaskGenerator(grid=grid, num_masked=num_masked, min_block=min_block)
    for seed in range(100):
        mask = generator(torch.Generator().manual_seed(seed))
        assert mask.dtype == torch.bool
        assert mask.shape == grid
        assert int(mask.sum()) == num_masked


def test_block_masks_are_blocks() -> None:
    generator = BlockMaskGenerator()
    sizes = [largest_component(generator(np.random.default_rng(seed))) for seed in range(200)]
    assert sum(size >= 4 for size in sizes) >= 180
    assert max(sizes) >= 8


def test_block_mask_is_deterministic_per_seed() -> None:
    generator = BlockMaskGenerator()
    assert torch.equal(generator(torch.Generator().manual_seed(7)), generator(torch.Generator().manual_seed(7)))
    assert torch.equal(generator(np.random.default_rng(7)), generator(np.random.default_rng(7)))
    torch.manual_seed(7)
    first = generator()
    torch.manual_seed(7)
    assert torch.equal(first, generator())
    masks = {tuple(generator(torch.Generator().manual_seed(seed)).flatten().tolist()) for seed in range(20)}
    assert len(masks) > 10


def test_block_mask_errors() -> None:
    with pytest.raises(ValueError, match="num_masked"):
        BlockMaskGenerator(grid=(7, 7), num_masked=50)
    with pytest.raises(ValueError, match="num_masked"):
        BlockMaskGenerator(num_masked=-1)
    with pytest.raises(ValueError, match="aspect"):
        BlockMaskGenerator(min_aspect=2.0, max_aspect=1.0)
    with pytest.raises(TypeError, match="generator"):
        BlockMaskGenerator()(generator=3)  # type: ignore[arg-type]

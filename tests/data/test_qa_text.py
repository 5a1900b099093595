import pytest

from clover_pl.data.qa_text import DEFAULT_MC_TEMPLATE, candidate_texts, check_template, encode_with_blank
from clover_pl.data.text import load_tokenizer


@pytest.fixture(scope="module")
def tokenizer(bert_dir: str):
    return load_tokenizer(bert_dir)


def _words(tokenizer, count: int) -> list[str]:
    vocabulary = [w for w in tokenizer.get_vocab() if w.isalpha() and not w.startswith("[")]
    return sorted(vocabulary)[:count]


@pytest.mark.parametrize("blank_at", [0, 3, 10, 19])
def test_blank_position_survives_truncation(tokenizer, blank_at: int) -> None:
    words = (_words(tokenizer, 5) * 4)[:20]
    words[blank_at] = "[MASK]"
    max_length = 8
    ids, mask, position = encode_with_blank(tokenizer, " ".join(words), max_length)
    assert ids.shape == mask.shape == (max_length,)
    assert ids[position] == tokenizer.mask_token_id
    assert ids[0] == tokenizer.cls_token_id
    assert ids[-1] == tokenizer.sep_token_id
    assert mask.all()
    # The window is the sentence's own tokens around the blank, in order (a naive reference: full ids, sliced).
    full = tokenizer(" ".join(words))["input_ids"]
    window = ids[1:-1].tolist()
    starts = [s for s in range(1, len(full) - len(window)) if full[s : s + len(window)] == window]
    assert starts, "the kept tokens are not a contiguous piece of the sentence"


def test_short_blank_text_is_padded_not_cut(tokenizer) -> None:
    words = _words(tokenizer, 3)
    ids, mask, position = encode_with_blank(tokenizer, f"{words[0]} [MASK] {words[1]}", 10)
    assert position == 2
    assert ids[position] == tokenizer.mask_token_id
    assert mask.tolist() == [1] * 5 + [0] * 5
    assert (ids[5:] == tokenizer.pad_token_id).all()


@pytest.mark.parametrize("text", ["no blank here", "[MASK] and [MASK]"])
def test_blank_count_other_than_one_is_an_error(tokenizer, text: str) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        encode_with_blank(tokenizer, text, 16)


def test_release_template_lists_every_option_then_the_candidate() -> None:
    texts = candidate_texts("what does he do?", ["run", "jump"], DEFAULT_MC_TEMPLATE)
    assert texts == [
        "what does he do? Options: run jump Answer: run",
        "what does he do? Options: run jump Answer: jump",
    ]
    # LSMDC-MC has no question: the text starts with "Options:".
    assert candidate_texts("", ["a b", "c"])[1] == "Options: a b c Answer: c"


def test_templates_are_checked() -> None:
    check_template("{candidate}")
    with pytest.raises(ValueError, match="candidate"):
        check_template("{question} only")
    with pytest.raises(ValueError, match="not valid"):
        check_template("{question} {answer}")

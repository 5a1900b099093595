from pathlib import Path

import pytest
import torch
from transformers import BertModel

from clover_pl.data.text import load_tokenizer
from clover_pl.models import TextEncoder


def test_equals_transformers_bert_loaded_from_the_same_directory(bert_dir: str) -> None:
    encoder = TextEncoder(pretrained_path=bert_dir).eval()
    reference = BertModel.from_pretrained(bert_dir, add_pooling_layer=False, attn_implementation="eager").eval()
    tokenizer = load_tokenizer(bert_dir)
    batch = tokenizer(
        ["a red circle moving left", "two dogs"], padding="max_length", max_length=12, return_tensors="pt"
    )
    with torch.no_grad():
        ours = encoder(batch["input_ids"], batch["attention_mask"])
        theirs = reference(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)


def test_load_report_names_what_was_left_aside(bert_dir: str) -> None:
    report = TextEncoder(pretrained_path=bert_dir).load_report
    assert report is not None
    assert "embeddings.word_embeddings.weight" in report.loaded
    assert "encoder.layer.2.output.dense.weight" in report.loaded
    assert "pooler.dense.weight" in report.skipped
    assert "cls.predictions.transform.dense.weight" in report.skipped


def test_random_init_from_sizes() -> None:
    encoder = TextEncoder(vocab_size=50, hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32)
    states = encoder(torch.randint(0, 50, (3, 7)), torch.ones(3, 7, dtype=torch.long))
    assert states.shape == (3, 7, 16)
    assert encoder.hidden_size == 16
    assert not hasattr(encoder.bert, "pooler") or encoder.bert.pooler is None


def test_missing_directory_is_one_clear_error(tmp_path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(FileNotFoundError, match=str(missing)):
        TextEncoder(pretrained_path=str(missing))


def test_directory_without_weights(tmp_path, bert_dir: str) -> None:
    (tmp_path / "config.json").write_text(Path(bert_dir, "config.json").read_text())
    with pytest.raises(FileNotFoundError, match="no weight file"):
        TextEncoder(pretrained_path=str(tmp_path))


def test_weight_file_that_is_not_a_checkpoint(tmp_path, bert_dir: str) -> None:
    (tmp_path / "config.json").write_text(Path(bert_dir, "config.json").read_text())
    (tmp_path / "model.safetensors").write_bytes(b"this is not a safetensors file")
    with pytest.raises(ValueError, match="model.safetensors"):
        TextEncoder(pretrained_path=str(tmp_path))


def test_shape_mismatch_names_key_and_path(tmp_path, bert_dir: str) -> None:
    from safetensors.torch import load_file, save_file

    state = load_file(f"{bert_dir}/model.safetensors")
    state["bert.encoder.layer.1.attention.self.query.weight"] = torch.zeros(5, 5)
    save_file(state, tmp_path / "model.safetensors")
    (tmp_path / "config.json").write_text(Path(bert_dir, "config.json").read_text())
    with pytest.raises(ValueError, match=r"encoder\.layer\.1\.attention\.self\.query\.weight.*" + str(tmp_path)):
        TextEncoder(pretrained_path=str(tmp_path))


def test_tokenizer_from_directory_knows_the_vocabulary(bert_dir: str) -> None:
    tokenizer = load_tokenizer(bert_dir)
    ids = tokenizer("a red circle")["input_ids"]
    assert tokenizer.unk_token_id not in ids
    assert ids[0] == tokenizer.cls_token_id
    assert ids[-1] == tokenizer.sep_token_id


def test_tokenizer_missing_path(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="tokenizer not found"):
        load_tokenizer(str(tmp_path / "absent"))


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_prepared_mask_equals_transformers_own_masking(attention: str) -> None:
    from clover_pl.models import clover_tiny

    encoder = clover_tiny().text.eval()
    encoder.bert.config._attn_implementation = attention
    ids = torch.randint(5, 100, (3, 8))
    mask = torch.ones(3, 8, dtype=torch.long)
    mask[0, -3:] = 0
    with torch.no_grad():
        reference = encoder.bert(input_ids=ids, attention_mask=mask).last_hidden_state
        torch.testing.assert_close(encoder(ids, mask), reference)

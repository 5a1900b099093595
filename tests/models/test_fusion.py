import pytest
import torch
from transformers import BertModel

from clover_pl.models import FusionEncoder


def tiny_fusion(**overrides) -> FusionEncoder:
    sizes = {
        "video_dim": 24,
        "hidden_size": 32,
        "num_layers": 2,
        "num_heads": 2,
        "intermediate_size": 64,
        "spatial_tokens": 4,
        "temporal_slots": 3,
    }
    return FusionEncoder(**{**sizes, **overrides}).eval()


def inputs(batch: int = 2, frames: int = 2, length: int = 6):
    video = torch.randn(batch, frames, 2, 2, 24)
    text = torch.randn(batch, length, 32)
    mask = torch.ones(batch, length, dtype=torch.long)
    mask[0, 4:] = 0
    return video, text, mask


def test_shapes_and_cls_is_text_cls() -> None:
    fusion = tiny_fusion()
    video, text, mask = inputs()
    out = fusion(video, text, mask)
    assert out.video.shape == (2, 8, 32)
    assert out.text.shape == (2, 6, 32)
    torch.testing.assert_close(out.cls, out.text[:, 0])


def test_padded_text_positions_change_nothing() -> None:
    fusion = tiny_fusion()
    video, text, mask = inputs()
    out = fusion(video, text, mask)
    changed = text.clone()
    changed[0, 4:] = 100 * torch.randn(2, 32)
    again = fusion(video, changed, mask)
    torch.testing.assert_close(again.video, out.video)
    torch.testing.assert_close(again.cls, out.cls)
    torch.testing.assert_close(again.text[0, :4], out.text[0, :4])
    torch.testing.assert_close(again.text[1], out.text[1])


def test_extra_cls_is_read_after_the_video_tokens() -> None:
    fusion = tiny_fusion(extra_cls=True)
    video, text, mask = inputs()
    out = fusion(video, text, mask)
    assert out.video.shape == (2, 8, 32)
    assert out.text.shape == (2, 6, 32)
    assert not torch.allclose(out.cls, out.text[:, 0])
    # The extra CLS attends to everything, so changing the text changes it.
    assert not torch.allclose(fusion(video, text + 1, mask).cls, out.cls)


def test_temporal_slots_and_spatial_grid_are_checked() -> None:
    fusion = tiny_fusion(temporal_slots=2)
    video, text, mask = inputs(frames=3)
    with pytest.raises(ValueError, match="temporal_slots=2"):
        fusion(video, text, mask)
    with pytest.raises(ValueError, match="spatial_tokens=4"):
        fusion(torch.randn(2, 1, 3, 3, 24), text, mask)


def test_layers_come_from_bert_layers_0_to_n_and_match_a_layer_by_layer_reference(bert_dir: str) -> None:
    fusion = FusionEncoder(video_dim=24, num_layers=2, spatial_tokens=4, pretrained_path=bert_dir).eval()
    bert = BertModel.from_pretrained(bert_dir, add_pooling_layer=False, attn_implementation="eager").eval()
    for index in range(2):
        torch.testing.assert_close(
            fusion.encoder.layer[index].output.dense.weight, bert.encoder.layer[index].output.dense.weight
        )
    assert fusion.load_report is not None
    assert "video_in.weight" in fusion.load_report.skipped
    video, text, mask = inputs()
    with torch.no_grad():
        out = fusion(video, text, mask)
        # Independent path: embed, concatenate, then BERT's own first two layers with an explicit additive mask.
        states = torch.cat([fusion.embed_video(video), text + fusion.modality.weight[1]], dim=1)
        keep = torch.cat([torch.ones(2, 8), mask.float()], dim=1)
        additive = (1.0 - keep)[:, None, None, :] * torch.finfo(torch.float32).min
        for layer in bert.encoder.layer[:2]:
            states = layer(states, attention_mask=additive)
    torch.testing.assert_close(out.text, states[:, 8:], rtol=1e-5, atol=1e-5)


def test_more_layers_than_the_bert_has(bert_dir: str) -> None:
    with pytest.raises(ValueError, match="only 3 layers"):
        FusionEncoder(video_dim=24, num_layers=4, spatial_tokens=4, pretrained_path=bert_dir)

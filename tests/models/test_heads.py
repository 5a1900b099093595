import torch
import torch.nn.functional as F
from transformers import BertForPreTraining

from clover_pl.models import DualEncoderHeads, FusedHeads, MLMHead, ProjectionHead, QAHead


def test_projection_head_init_and_shapes() -> None:
    head = ProjectionHead(16, 24, 8, layer_norm=True)
    assert head(torch.randn(3, 16)).shape == (3, 8)
    first = head.layers[0]
    assert torch.count_nonzero(first.bias) == 0
    bound = (6 / (16 + 24)) ** 0.5  # Xavier-uniform bound
    assert first.weight.abs().max() <= bound


def test_dual_encoder_heads_match_the_spec_sizes() -> None:
    heads = DualEncoderHeads(video_dim=1024, text_dim=768)
    sizes = [tuple(m.weight.shape) for m in heads.video.modules() if isinstance(m, torch.nn.Linear)]
    assert sizes == [(1536, 1024), (768, 1536)]
    sizes = [tuple(m.weight.shape) for m in heads.text.modules() if isinstance(m, torch.nn.Linear)]
    assert sizes == [(768, 768), (768, 768)]
    assert heads.temperature == 0.05


def test_similarity_is_cosine_over_temperature() -> None:
    heads = DualEncoderHeads(video_dim=8, text_dim=8, embed_dim=4, temperature=0.1)
    video, text = torch.randn(3, 4), torch.randn(5, 4)
    expected = torch.tensor([[F.cosine_similarity(v, t, dim=0) / 0.1 for t in text] for v in video])
    torch.testing.assert_close(heads.similarity(video, text), expected)


def test_video_projection_pools_every_token() -> None:
    heads = DualEncoderHeads(video_dim=8, text_dim=8, embed_dim=4)
    tokens = torch.randn(2, 3, 2, 2, 8)
    torch.testing.assert_close(heads.project_video(tokens), heads.video(tokens.mean(dim=(1, 2, 3))))


def test_fused_video_head_takes_a_vector_for_any_batch_size() -> None:
    # The release's V-head averaged over dim 1 of a (B, D) input and crashed unless B == D (spec 3.6).
    heads = FusedHeads(hidden_size=32, embed_dim=16)
    assert heads.video(torch.randn(5, 32)).shape == (5, 16)
    assert heads.text(torch.randn(5, 32)).shape == (5, 16)


def test_mlm_head_equals_bert_cls_predictions(bert_dir: str) -> None:
    head = MLMHead(pretrained_path=bert_dir).eval()
    reference = BertForPreTraining.from_pretrained(bert_dir).eval()
    states = torch.randn(2, 5, 32)
    with torch.no_grad():
        torch.testing.assert_close(head(states), reference.cls.predictions(states))
    # A copy, not tied: the head has its own decoder weight.
    assert head.decoder.weight.data_ptr() != reference.bert.embeddings.word_embeddings.weight.data_ptr()


def test_qa_head_shapes() -> None:
    assert QAHead(32, 16, 7)(torch.randn(4, 32)).shape == (4, 7)
    assert QAHead(32, 16, 1, dropout=0.5)(torch.randn(4, 32)).shape == (4, 1)

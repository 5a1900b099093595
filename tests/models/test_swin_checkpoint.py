import pytest
import torch

from clover_pl.models.swin_checkpoint import LoadReport, interpolate_bias_table, load_video_swin_checkpoint
from clover_pl.models.video_swin import VideoSwinTransformer

SIZES = {"embed_dim": 16, "depths": [2, 1], "num_heads": [1, 2], "window_size": (2, 4, 4), "drop_path_rate": 0.0}
TABLE = "layers.0.blocks.1.attn.relative_position_bias_table"


def tiny(seed: int, **overrides) -> VideoSwinTransformer:
    torch.manual_seed(seed)
    return VideoSwinTransformer(**{**SIZES, **overrides}).eval()


def official_state(model: VideoSwinTransformer) -> dict:
    """The release layout: encoder under ``backbone.``, a Kinetics head, no mask token."""
    state = {f"backbone.{key}": value for key, value in model.state_dict().items() if key != "mask_token"}
    state["cls_head.fc_cls.weight"] = torch.randn(400, model.out_dim)
    state["cls_head.fc_cls.bias"] = torch.zeros(400)
    return {"meta": {"epoch": 30, "config": "swin3d"}, "state_dict": state}


@pytest.fixture
def source() -> VideoSwinTransformer:
    return tiny(seed=1, mask_token=False)


@pytest.fixture
def official_file(tmp_path, source) -> str:
    path = tmp_path / "swin_official.pth"
    torch.save(official_state(source), path)
    return str(path)


def test_official_release_loads(official_file, source):
    target = tiny(seed=2)
    token = target.mask_token.detach().clone()
    report = load_video_swin_checkpoint(target, official_file)
    for key, value in source.state_dict().items():
        assert torch.equal(target.state_dict()[key], value), key
    assert torch.equal(target.mask_token, token)
    assert report.skipped["cls_head.fc_cls.weight"] == "not part of the video encoder"
    assert report.skipped["cls_head.fc_cls.bias"] == "not part of the video encoder"
    assert report.skipped["mask_token"] == "pretraining-only, kept at its initialisation"
    assert (
        report.skipped[f"backbone.{TABLE.replace('bias_table', 'index')}"] == "buffer recomputed from the window size"
    )
    assert "patch_embed.proj.weight" in report.loaded
    assert report.interpolated == []
    assert report.missing == []
    assert official_file in report.summary()


def test_constructor_loads_checkpoint(official_file, source):
    model = VideoSwinTransformer(**SIZES, pretrained_path=official_file)
    assert isinstance(model.load_report, LoadReport)
    assert torch.equal(model.norm.weight, source.norm.weight)
    assert VideoSwinTransformer(**SIZES).load_report is None


@pytest.mark.parametrize("wrap", ["bare", "model", "module"])
def test_other_layouts_load(tmp_path, source, wrap):
    state = {key: value for key, value in source.state_dict().items() if "relative_position_index" not in key}
    if wrap == "model":
        content = {"model": {f"backbone.{key}": value for key, value in state.items()}}
    elif wrap == "module":
        content = {f"module.backbone.{key}": value for key, value in state.items()}
    else:
        content = state
    path = tmp_path / "stripped.pth"
    torch.save(content, path)
    target = tiny(seed=3, mask_token=False)
    report = load_video_swin_checkpoint(target, str(path))
    assert torch.equal(target.layers[1].blocks[0].attn.qkv.weight, source.layers[1].blocks[0].attn.qkv.weight)
    assert report.skipped == {}


def test_missing_key_is_an_error(tmp_path, source):
    content = official_state(source)
    del content["state_dict"]["backbone.layers.1.blocks.0.mlp.fc2.bias"]
    path = tmp_path / "incomplete.pth"
    torch.save(content, path)
    with pytest.raises(ValueError, match=r"layers\.1\.blocks\.0\.mlp\.fc2\.bias") as error:
        load_video_swin_checkpoint(tiny(seed=0), str(path))
    assert str(path) in str(error.value)


def test_shape_mismatch_is_an_error(tmp_path):
    path = tmp_path / "wider.pth"
    torch.save(official_state(tiny(seed=0, embed_dim=32)), path)
    with pytest.raises(ValueError, match=r"patch_embed\.proj\.weight.*\(32, 3, 2, 4, 4\).*\(16, 3, 2, 4, 4\)") as error:
        load_video_swin_checkpoint(tiny(seed=0), str(path))
    assert str(path) in str(error.value)


def test_not_a_checkpoint(tmp_path):
    garbage = tmp_path / "random.pth"
    garbage.write_bytes(bytes(range(256)) * 4)
    text = tmp_path / "notes.pth"
    text.write_text("not a checkpoint\n")
    strings = tmp_path / "strings.pth"
    torch.save({"state_dict": {"a": "b"}}, strings)
    for path in (garbage, text, strings):
        with pytest.raises(ValueError, match="not a (PyTorch )?checkpoint") as error:
            load_video_swin_checkpoint(tiny(seed=0), str(path))
        assert str(path) in str(error.value)


def test_missing_path(tmp_path):
    path = str(tmp_path / "nowhere.pth")
    with pytest.raises(FileNotFoundError, match=f"Video Swin checkpoint not found: {path}"):
        load_video_swin_checkpoint(tiny(seed=0), path)


@pytest.mark.slow
def test_window_change_interpolates_the_bias_table(tmp_path):
    path = tmp_path / "base_window.pth"
    source = tiny(seed=1, window_size=(8, 7, 7), mask_token=False)
    torch.save(official_state(source), path)
    target = tiny(seed=2, window_size=(4, 7, 7))
    with pytest.warns(UserWarning, match=r"relative_position_bias_table.*\(2535, \d\).*\(1183, \d\)"):
        report = load_video_swin_checkpoint(target, str(path))
    assert TABLE in report.interpolated
    assert len(report.interpolated) == 3
    table = target.state_dict()[TABLE]
    assert table.shape == (7 * 13 * 13, 1)
    # The zero offset stays at the centre of the table.
    torch.testing.assert_close(table.view(7, 13, 13)[3, 6, 6], source.state_dict()[TABLE].view(15, 13, 13)[7, 6, 6])
    out = target(torch.randn(1, 3, 8, 56, 56))
    assert out.shape == (1, 4, 7, 7, 32)
    assert torch.isfinite(out).all()


def test_interpolation_to_the_same_window_is_identity():
    table = torch.randn(3 * 7 * 7, 2)
    assert torch.allclose(interpolate_bias_table(table, (2, 4, 4), (2, 4, 4)), table)

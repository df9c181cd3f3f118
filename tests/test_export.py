import pytest
import torch

from lmmsn.export import ExportError, load_exported_weights, read_exported_config, save_exported


def test_round_trip_is_bit_identical(tmp_path):
    state = {"w": torch.randn(3, 4), "b": torch.arange(5)}
    save_exported(tmp_path / "m", "thing", {"dim": 4}, state)
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["config.yaml", "format_version", "model.safetensors"]
    assert read_exported_config(tmp_path / "m", "thing") == {"dim": 4}
    back = load_exported_weights(tmp_path / "m")
    assert all(torch.equal(back[k], v) for k, v in state.items())


def test_wrong_kind_version_and_missing_dir(tmp_path):
    save_exported(tmp_path / "m", "thing", {}, {"w": torch.zeros(1)})
    with pytest.raises(ExportError, match="expected 'other'"):
        read_exported_config(tmp_path / "m", "other")
    (tmp_path / "m" / "format_version").write_text("999\n")
    with pytest.raises(ExportError, match="format_version '999'"):
        read_exported_config(tmp_path / "m", "thing")
    with pytest.raises(ExportError, match="nothing: does not exist"):
        read_exported_config(tmp_path / "nothing", "thing")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ExportError, match="file: not a directory"):
        read_exported_config(tmp_path / "file", "thing")


def test_pickle_is_never_loaded(tmp_path):
    save_exported(tmp_path / "m", "thing", {}, {"w": torch.zeros(1)})
    torch.save({"w": torch.zeros(1)}, tmp_path / "m" / "model.safetensors")  # a pickle in disguise
    with pytest.raises(ExportError, match="model.safetensors: not a readable safetensors file"):
        load_exported_weights(tmp_path / "m")

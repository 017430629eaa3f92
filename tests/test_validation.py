"""Checked at the edges: CLI ranges, the typed config, the schema, and model cards on load."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from conftest import random_scene, run_cli, write_scene

from rsseg.cli.flags import cli_message
from rsseg.data.patches import read_dataset_info
from rsseg.errors import OptionError, RssegError
from rsseg.models import create_model, load_checkpoint, save_checkpoint
from rsseg.models.checkpoint import FORMAT_KEY, read_card
from rsseg.models.default import DEFAULT_MODEL
from rsseg.schema import NODATA, ClassSchema, InputSpec, SchemaError
from rsseg.tiling import PredictOptions, predict_scene
from rsseg.train.config import build_config
from rsseg.vector.source import resolve_classes

ROOT = Path(__file__).resolve().parents[1]


def one_line_error(code: int, text: str) -> str:
    """The single error line of a failed CLI run (no traceback, no usage block)."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    assert code != 0 and code is not None, text
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "Traceback" not in text, text
    return lines[0]


@pytest.fixture()
def scene(tmp_path):
    return write_scene(tmp_path / "scene.tif", random_scene(64, 64))


@pytest.mark.parametrize("args, expected", [
    (["--stride", "-5"], "--stride"),
    (["--threads", "-1"], "--threads"),
    (["--device", "foo"], "--device"),
    (["--input-scale", "-1"], "--input-scale"),
    (["--input-scale", "nan"], "--input-scale"),
    (["--tile", "0"], "--tile"),
    (["--tile", "100"], "--tile 100: must be a positive multiple of 32"),
    (["--overlap", "1"], "--overlap"),
    (["--batch-size", "0"], "--batch-size"),
    (["--bands", "0,1,2"], "--bands"),
])
def test_predict_ranges_refused_in_one_line(scene, tmp_path, capsys, args, expected):
    out = tmp_path / "mask.tif"
    code, text = run_cli(["predict", str(scene), "-o", str(out), *args], capsys)
    assert expected in one_line_error(code, text)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scene.tif"]


@pytest.mark.parametrize("args, expected", [
    (["--batch-size", "0"], "--batch-size"),
    (["--tile", "0"], "--tile"),
    (["--set", "optim.lr=fast"], "optim.lr='fast' must be a number"),
    (["--set", "train.select_metric=nope"], "train.select_metric='nope' must be one of mIoU"),
    (["--set", "optim.schedule=step"], "optim.schedule='step' must be one of cosine, poly"),
    (["--set", "train.epochs=0"], "train.epochs=0 must be >= 1"),
    (["--device", "gpu"], "--device"),
])
def test_train_values_refused_before_reading_data(tmp_path, capsys, args, expected):
    missing = tmp_path / "no_such_patches"  # never read: the config fails first
    code, text = run_cli(["train", "--data", str(missing), "-o", str(tmp_path / "run"), *args], capsys)
    assert expected in one_line_error(code, text)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("args", [["--val-fraction", "-0.5"], ["--val-fraction", "0.6", "--test-fraction", "0.5"],
                                  ["--patch", "8"], ["--stride", "0"], ["--bands", "-1"]])
def test_prepare_ranges_refused(scene, tmp_path, capsys, args):
    code, text = run_cli(["prepare", "generic", "--image", str(scene), "--labels", str(scene), "--classes", "a,b",
                          "-o", str(tmp_path / "patches"), *args], capsys)
    one_line_error(code, text)
    assert not (tmp_path / "patches").exists()


def test_models_and_vectorize_ranges_refused(tmp_path, capsys):
    one_line_error(*run_cli(["models", "--size", "0"], capsys))
    one_line_error(*run_cli(["models", "--num-classes", "1"], capsys))
    mask = write_scene(tmp_path / "mask.tif", np.zeros((1, 32, 32), dtype=np.uint8))
    for args in (["--window-rows", "-5"], ["--window-rows", "0"], ["--min-area", "-1"], ["--simplify", "nan"]):
        line = one_line_error(*run_cli(["vectorize", str(mask), "-o", str(tmp_path / "v.gpkg"), *args], capsys))
        assert args[0] in line
    assert not (tmp_path / "v.gpkg").exists()


def test_missing_files_are_one_line_errors(tmp_path, capsys):
    line = one_line_error(*run_cli(["predict", str(tmp_path / "nope.tif")], capsys))
    assert f"{tmp_path / 'nope.tif'}: file not found" in line
    line = one_line_error(*run_cli(["evaluate", "--checkpoint", str(tmp_path / "nope.pt"), "--data", "x"], capsys))
    assert "nope.pt: model file not found" in line
    line = one_line_error(*run_cli(["prepare", "generic", "--image", str(tmp_path / "a.tif"), "--labels",
                                    str(tmp_path / "b.tif"), "--classes", "a,b", "-o", str(tmp_path / "p")], capsys))
    assert "a.tif: file not found" in line
    one_line_error(*run_cli(["predict"], capsys))  # a usage error is one line too


def test_uint32_class_ids_beyond_int32_refused(tmp_path, capsys):
    data = np.zeros((1, 16, 16), dtype=np.uint32)
    data[0, 4:8, 4:8] = 2**31 + 5
    mask = write_scene(tmp_path / "mask.tif", data)
    line = one_line_error(*run_cli(["vectorize", str(mask), "-o", str(tmp_path / "v.gpkg"), "--quiet"], capsys))
    assert f"class id {2**31 + 5} is larger than" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mask.tif"]


def test_config_is_typed_and_library_messages_name_no_flag():
    config = build_config(None, ("data.root=p", "model.backbone=resnet18", "train.select_metric=all.mF1",
                                 "data.scale=[0.75, 1.25]", "optim.warmup_epochs=2", "optim.lr=1e-3"))
    assert config.optim.lr == 0.001  # YAML reads 1e-3 as a string; the typed config takes it as a number
    assert config.model.name == "unet" and config.model.kwargs == {"backbone": "resnet18"}
    assert config.data.scale == (0.75, 1.25) and config.optim.warmup_epochs == 2.0
    assert isinstance(config.optim.warmup_epochs, float) and config.train.select_metric == "all.mF1"
    assert config.to_dict()["model"] == {"name": "unet", "backbone": "resnet18"}
    with pytest.raises(RssegError, match="train.amp=1 must be true or false"):
        build_config(None, ("data.root=p", "train.amp=1"))
    with pytest.raises(OptionError) as err:
        PredictOptions(tile=0)
    assert str(err.value) == "tile=0: must be positive"
    assert cli_message(err.value) == "--tile 0: must be positive"


def test_class_schema_checks_and_case_insensitive_lookup():
    schema = ClassSchema(("Building", "Tree", "Road"))
    assert schema.index("building") == 0 and schema.lookup("TREE") == 1 and schema.lookup("2") == 2
    assert schema.lookup("3") is None and schema.lookup("water") is None
    assert len(schema.colors) == 3 and schema.ignore_index == NODATA
    assert resolve_classes(Path("m.tif"), ["building", "TREE"], list(schema.names)) == [0, 1]
    for bad in (dict(names=("a", "A")), dict(names=("a", "b"), colors=((0, 0, 0),)),
                dict(names=("a", "b"), ignore_index=1), dict(names=("a", "b"), excluded_from_mean=(2,))):
        with pytest.raises(SchemaError):
            ClassSchema(**bad)
    for bad in (dict(mean=(0.5,), std=(0.2, 0.2)), dict(mean=(0.5,), std=(0.0,)), dict(mean=(0.5,), std=(1,), scale=0),
                dict(mean=(0.5,), std=(1,), scale=float("nan")), dict(mean=(0.5,), std=(1,), bands=(0,))):
        with pytest.raises(SchemaError):
            InputSpec(**bad)


def _tampered(tmp_path: Path, name: str, **changes) -> Path:
    """A 6-class model file whose stored card has ``changes`` applied to its ``classes``/``input``/top level."""
    path = tmp_path / "good.pt"
    save_checkpoint(create_model("test_tiny_fcn", 6), path, tile_size=64)
    payload = torch.load(path, weights_only=True)
    for key, value in changes.items():
        section, _, field = key.partition("__")
        target = payload["card"][section] if field else payload["card"]
        target[field or section] = value
    out = tmp_path / name
    torch.save(payload, out)
    return out


@pytest.mark.parametrize("changes, problem", [
    ({"classes__names": list("abcde"), "classes__colors": [[0, 0, 0]] * 5}, "model has 6 classes but its card names 5"),
    ({"classes__colors": [[0, 0, 0]] * 5}, "6 classes need 6 colours"),
    ({"input__scale": 0}, "input scale 0.0 must be finite and > 0"),
    ({"input__mean": [0.5, 0.5]}, "2 band means but 3 band stds"),
    ({"input__bands": [1, 2]}, "bands [1, 2] must be 3 1-based band numbers"),
    ({"classes": "six"}, "invalid model card"),
    ({"tile_size": -3}, "tile_size -3"),
])
def test_broken_model_cards_refused_on_load(tmp_path, capsys, changes, problem):
    path = _tampered(tmp_path, "broken.pt", **changes)
    with pytest.raises(RssegError) as err:
        read_card(path)
    assert str(err.value).startswith(f"{path}: invalid model card") and problem in str(err.value)
    line = one_line_error(*run_cli(["evaluate", "--checkpoint", str(path), "--data", str(tmp_path)], capsys))
    assert problem in line


def test_unknown_card_fields_warn_and_format_1_still_loads(tmp_path):
    path = _tampered(tmp_path, "extra.pt", future_field=1)
    with pytest.warns(UserWarning, match="model card field 'future_field' is unknown"):
        card, _ = read_card(path)
    assert card.classes.num_classes == 6
    payload = torch.load(path, weights_only=True)
    assert payload[FORMAT_KEY] == 2 and set(payload["card"]["input"]) == {"bands", "scale", "mean", "std", "gsd"}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model, card = load_checkpoint(DEFAULT_MODEL)  # the bundled model (format 2 since issue 12)
    assert card.classes.names[1] == "Building" and card.classes.excluded_from_mean == (5,)
    assert "excluded_from_mean" not in card.extra and card.input.gsd == 0.2
    assert read_dataset_info(ROOT / "data_samples" / "patches").classes == card.classes  # flat dataset.yaml too


def test_predict_scene_restores_thread_count(scene, tmp_path):
    model = create_model("test_tiny_fcn", 3)
    before = torch.get_num_threads()
    save_checkpoint(model, tmp_path / "m.pt", tile_size=64)
    _, card = load_checkpoint(tmp_path / "m.pt")
    predict_scene(scene, tmp_path / "mask.tif", model, card, PredictOptions(progress=False), threads=before + 1)
    assert torch.get_num_threads() == before
    with rasterio.open(tmp_path / "mask.tif") as ds:
        assert ds.read(1).max() < 3

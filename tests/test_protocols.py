"""Benchmark protocols against hand-computed confusion matrices, the ISPRS erosion included."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch
from conftest import run_cli, write_scene

from rsseg.models import create_model, save_checkpoint
from rsseg.train.metrics import ConfusionMatrix
from rsseg.train.protocols import PROTOCOLS, disc_offsets, erode_reference, protocol_metrics

ISPRS_NAMES = ["ImSurf", "Building", "LowVeg", "Tree", "Car", "Clutter"]


def test_disc_of_radius_3_has_29_pixels():
    assert len(disc_offsets(3)) == 29 and (3, 0) in disc_offsets(3) and (2, 3) not in disc_offsets(3)


def test_erosion_ignores_a_disc_of_3_px_around_class_boundaries():
    mask = np.zeros((12, 12), dtype=np.uint8)
    mask[:, 6:] = 1  # a vertical boundary between columns 5 and 6
    eroded = erode_reference(mask, 255)
    # columns 3..8 lie within 3 px of a pixel of the other class; the image edge is no boundary
    assert (eroded[:, 3:9] == 255).all()
    assert (eroded[:, :3] == 0).all() and (eroded[:, 9:] == 1).all()


def test_erosion_uses_a_disc_not_a_square():
    mask = np.zeros((15, 15), dtype=np.uint8)
    mask[7, 7] = 2
    eroded = erode_reference(mask, 255)
    assert (eroded == 255).sum() == 29  # the disc around the single pixel (itself included)
    assert eroded[4, 7] == 255 and eroded[5, 5] == 255 and eroded[4, 5] == 0  # (3,2) is outside radius 3


def test_erosion_leaves_ignored_pixels_as_no_boundary():
    mask = np.zeros((9, 9), dtype=np.uint8)
    mask[4, 4] = 255
    assert (erode_reference(mask, 255) == mask).all()


def test_isprs_means_leave_clutter_out_oa_keeps_it():
    # rows: reference, columns: prediction
    cm = np.zeros((6, 6), dtype=np.int64)
    cm[0, 0], cm[0, 1] = 8, 2      # ImSurf: TP 8, FN 2
    cm[1, 1] = 6                   # Building: TP 6, FP 2 (ImSurf's FN)
    cm[2, 2] = cm[3, 3] = cm[4, 4] = 5
    cm[5, 5], cm[5, 0] = 1, 9      # Clutter: IoU 1/10
    metrics = protocol_metrics(cm, ISPRS_NAMES, PROTOCOLS["isprs"])
    iou = [8 / 19, 6 / 8, 1, 1, 1]  # ImSurf: 8 / (10 + 17 - 8)
    f1 = [16 / 27, 12 / 14, 1, 1, 1]
    assert metrics["protocol"]["mIoU"] == pytest.approx(np.mean(iou))
    assert metrics["protocol"]["mF1"] == pytest.approx(np.mean(f1))
    assert metrics["protocol"]["OA"] == pytest.approx(30 / 41)  # 30 correct of 41 pixels, Clutter included
    assert metrics["protocol"]["classes"] == ISPRS_NAMES[:5]
    uavid = protocol_metrics(cm, ISPRS_NAMES, PROTOCOLS["uavid"])
    assert uavid["protocol"]["mIoU"] == pytest.approx(np.mean(iou + [1 / 10]))


def test_one_global_matrix_not_a_mean_of_scenes():
    matrix = ConfusionMatrix(2)
    matrix.update(torch.tensor([0, 0, 0, 1]), torch.tensor([0, 0, 0, 0]))  # scene 1
    matrix.update(torch.tensor([1]), torch.tensor([1]))                     # scene 2
    metrics = protocol_metrics(matrix.matrix.numpy(), ["a", "b"], PROTOCOLS["loveda"])
    # global: a IoU 3/4, b IoU 1/2; a mean of per-scene mIoUs would give (3/8 + 1) / 2
    assert metrics["protocol"]["mIoU"] == pytest.approx((3 / 4 + 1 / 2) / 2)


def test_evaluate_isprs_erodes_full_labels_and_says_so(tmp_path, capsys):
    torch.manual_seed(0)
    model = create_model("unetformer", 6, 3, decode_channels=16).eval()
    checkpoint = tmp_path / "m.pt"
    save_checkpoint(model, checkpoint, tile_size=64, class_names=ISPRS_NAMES, input_scale=255.0)
    rng = np.random.default_rng(0)
    scene = write_scene(tmp_path / "scene.tif", rng.integers(0, 255, (3, 64, 96)).astype(np.uint8))
    labels = np.zeros((64, 96), dtype=np.uint8)
    labels[:, 48:] = 1
    label_path = write_scene(tmp_path / "labels.tif", labels[None])
    out = tmp_path / "eval.json"
    code, output = run_cli(["evaluate", "--checkpoint", str(checkpoint), "--scene", str(scene), "--labels",
                            str(label_path), "--protocol", "isprs", "--output", str(out), "--quiet"], capsys)
    assert code == 0, output
    assert "eroded here as the ISPRS benchmark defines" in output and "protocol isprs (5 cls)" in output
    record = json.loads(out.read_text())
    assert record["protocol"]["name"] == "isprs" and record["eroded_reference"] == "computed"
    assert record["pixels"] == 64 * 96 - 64 * 6  # six columns around the boundary ignored
    assert record["checkpoint_sha256"] == hashlib.sha256(checkpoint.read_bytes()).hexdigest()

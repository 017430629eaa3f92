"""Metrics against a hand-computed confusion matrix; losses and their ignore index."""

from __future__ import annotations

import math

import pytest
import torch

from rsseg.train.losses import DiceLoss, SegmentationLoss
from rsseg.train.metrics import ConfusionMatrix, compute_metrics, format_table, metric_value

PRED = torch.tensor([[0, 1, 1], [2, 2, 0]])
TARGET = torch.tensor([[0, 1, 2], [2, 255, 1]])
NAMES = ["a", "b", "c"]


def test_confusion_matrix_by_hand_ignore_excluded():
    cm = ConfusionMatrix(3, ignore_index=255)
    cm.update(PRED, TARGET)
    # rows: reference, columns: prediction; the pixel labelled 255 (predicted 2) is not counted
    assert cm.matrix.tolist() == [[1, 0, 0], [1, 1, 0], [0, 1, 1]]
    cm.update(PRED, TARGET)
    assert int(cm.matrix.sum()) == 10


def test_metrics_equal_hand_computation_both_conventions():
    cm = ConfusionMatrix(3)
    cm.update(PRED, TARGET)
    m = compute_metrics(cm.matrix, NAMES, excluded_from_mean=[2])
    iou = {"a": 1 / 2, "b": 1 / 3, "c": 1 / 2}
    f1 = {"a": 2 / 3, "b": 1 / 2, "c": 2 / 3}
    for name in NAMES:
        assert m["per_class"][name]["IoU"] == pytest.approx(iou[name])
        assert m["per_class"][name]["F1"] == pytest.approx(f1[name])
    assert m["per_class"]["b"]["precision"] == pytest.approx(1 / 2)
    assert m["per_class"]["b"]["recall"] == pytest.approx(1 / 2)
    assert m["all"]["mIoU"] == pytest.approx(4 / 9)
    assert m["all"]["mF1"] == pytest.approx((2 / 3 + 1 / 2 + 2 / 3) / 3)
    assert m["papers"]["mIoU"] == pytest.approx(5 / 12)
    assert m["papers"]["mF1"] == pytest.approx(7 / 12)
    assert m["all"]["OA"] == m["papers"]["OA"] == pytest.approx(3 / 5)
    assert m["papers"]["classes"] == ["a", "b"] and m["pixels"] == 5
    assert metric_value(m, "mIoU") == m["papers"]["mIoU"]
    assert metric_value(m, "all.mF1") == m["all"]["mF1"]
    with pytest.raises(KeyError):
        metric_value(m, "nope")
    table = format_table(m)
    assert "papers (2 cls):  mIoU 41.67" in table and "all classes:      mIoU 44.44" in table


def test_absent_class_is_nan_and_left_out_of_means():
    cm = ConfusionMatrix(3)
    cm.update(torch.tensor([0, 0, 1]), torch.tensor([0, 1, 1]))
    m = compute_metrics(cm.matrix, NAMES)
    assert math.isnan(m["per_class"]["c"]["IoU"])
    assert m["all"]["mIoU"] == pytest.approx((1 / 2 + 1 / 2) / 2)


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="differ in shape"):
        ConfusionMatrix(3).update(torch.zeros(2, 2), torch.zeros(2, 3))


def test_dice_perfect_prediction_and_ignored_pixels():
    target = torch.tensor([[[0, 1], [2, 255]]])
    logits = torch.nn.functional.one_hot(target.clamp(max=2), 3).permute(0, 3, 1, 2).float() * 50
    assert float(DiceLoss()(logits, target)) < 1e-3
    changed = logits.clone()
    changed[0, :, 1, 1] = torch.tensor([9.0, -3.0, 4.0])  # only the ignored pixel changes
    loss = SegmentationLoss(label_smoothing=0.05)
    assert float(loss(changed, target)) == pytest.approx(float(loss(logits, target)))
    wrong = logits.roll(1, dims=1)
    assert float(loss(wrong, target)) > float(loss(logits, target)) + 1

"""``rsseg evaluate``: metrics of a model file on a patch folder split or on whole scenes."""

from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path

import click

from rsseg.cli import options as opt


@click.command()
@opt.checkpoint(required=True, help="Model file (best.pt / last.pt of a run).")
@click.option("--data", type=opt.FOLDER, help="Patch folder.")
@click.option("--split", type=click.Choice(("train", "val", "test")), default="test", show_default=True,
              help="Split of the patch folder.")
@click.option("--scene", "scenes", multiple=True, type=opt.FILE,
              help="Scene GeoTIFF, predicted through the tiling engine (repeatable).")
@click.option("--labels", "labels", multiple=True, type=opt.FILE,
              help="Label raster of each --scene (class ids or the model's class colours).")
@click.option("--protocol", type=click.Choice(("isprs", "uavid", "loveda", "plain")), default="plain",
              show_default=True, help="Benchmark protocol: isprs scores the eroded reference (computed when the "
              "labels are full) without Clutter in the means; uavid/loveda: all classes; plain: the model's classes.")
@opt.tta
@opt.batch_size
@opt.device()
@opt.output("Metrics JSON (default: beside the checkpoint, <name>_eval.json).")
@opt.overwrite
@opt.quiet
def evaluate(checkpoint: Path, data: Path | None, split: str, scenes: tuple[Path, ...], labels: tuple[Path, ...],
             protocol: str, tta: str, batch_size: int, device: str, output: Path | None, overwrite: bool,
             quiet: bool) -> None:
    """Per-class IoU/F1 and mIoU, mean F1, OA (all classes and the papers' convention).

    \b
    rsseg evaluate --checkpoint runs/vaihingen-manet/best.pt --data data/vaihingen --split test --tta flip
    rsseg evaluate --checkpoint best.pt --scene area2.tif --labels area2_labels.tif --protocol isprs
    """
    from rsseg.device import resolve_device
    from rsseg.errors import RssegError
    from rsseg.io.atomic import atomic_output
    from rsseg.io.outputs import check_outputs
    from rsseg.models import load_checkpoint
    from rsseg.train.evaluation import (
        erode_target,
        eroded_label_file,
        evaluate_patches,
        evaluate_scene,
        patch_references_eroded,
    )
    from rsseg.train.metrics import ConfusionMatrix, compute_metrics, format_table
    from rsseg.train.protocols import EROSION_RADIUS, PROTOCOLS, protocol_metrics

    if bool(data) == bool(scenes):
        raise RssegError(f"{checkpoint}: give either --data (patch folder) or --scene/--labels")
    if len(scenes) != len(labels):
        raise RssegError(f"{checkpoint}: one --labels per --scene ({len(scenes)} scenes, {len(labels)} labels)")
    json_path = output or checkpoint.with_name(f"{checkpoint.stem}_eval.json")
    check_outputs({"--json": json_path}, [checkpoint, *scenes, *labels], overwrite)
    dev = resolve_device(device)
    model, card = load_checkpoint(checkpoint, dev)
    unpredicted = 0
    rule = PROTOCOLS[protocol]
    ignore = card.classes.ignore_index
    erosion = f"full reference: eroded here as the ISPRS benchmark defines (disc of radius {EROSION_RADIUS} px)"
    computed_erosion = False
    if data:
        transform = None
        if rule.eroded and not patch_references_eroded(data, split, ignore):
            transform, computed_erosion = erode_target(ignore), True
            click.echo(f"{data} ({split}): {erosion}")
        matrix = evaluate_patches(model, card, data, split, tta, batch_size, dev, progress=not quiet,
                                  transform=transform)
        source = {"data": str(data), "split": split}
    else:
        matrix = ConfusionMatrix(card.num_classes, ignore)
        with tempfile.TemporaryDirectory(prefix="rsseg-eroded-") as tmp:
            for scene, label in zip(scenes, labels):
                eroded = eroded_label_file(label, card, tmp) if rule.eroded else None
                if eroded is not None:
                    computed_erosion = True
                    click.echo(f"{label}: {erosion}")
                part, missing = evaluate_scene(model, card, scene, eroded or label, tta, batch_size, str(dev),
                                               progress=not quiet)
                matrix.matrix += part.matrix
                unpredicted += missing
        source = {"scenes": [str(s) for s in scenes], "labels": [str(p) for p in labels]}
    if protocol == "plain":
        metrics = compute_metrics(matrix.matrix, card.classes.names, card.classes.excluded_from_mean)
    else:
        metrics = protocol_metrics(matrix.matrix, card.classes.names, rule)
    metrics.update(checkpoint=str(checkpoint), checkpoint_sha256=hashlib.sha256(checkpoint.read_bytes()).hexdigest(),
                   protocol=metrics.get("protocol", {"name": "plain"}), tta=tta,
                   eroded_reference=("computed" if computed_erosion else "given") if rule.eroded else "no",
                   unpredicted_labelled_pixels=unpredicted, **source)
    click.echo(format_table(metrics))
    with atomic_output(json_path, overwrite) as tmp:
        tmp.write_text(json.dumps(metrics, indent=1))
    click.echo(f"{metrics['pixels']} labelled pixels evaluated"
               + (f" ({unpredicted} left unpredicted as nodata)" if unpredicted else "") + f" -> {json_path}")

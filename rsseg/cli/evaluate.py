"""``rsseg evaluate``: metrics of a model file on a patch folder split or on whole scenes."""

from __future__ import annotations

import json
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
@opt.tta
@opt.batch_size
@opt.device()
@opt.output("Metrics JSON (default: beside the checkpoint, <name>_eval.json).")
@opt.overwrite
@opt.quiet
def evaluate(checkpoint: Path, data: Path | None, split: str, scenes: tuple[Path, ...], labels: tuple[Path, ...],
             tta: str, batch_size: int, device: str, output: Path | None, overwrite: bool, quiet: bool) -> None:
    """Per-class IoU/F1 and mIoU, mean F1, OA (all classes and the papers' convention).

    \b
    rsseg evaluate --checkpoint runs/vaihingen-manet/best.pt --data data/vaihingen --split test --tta flip
    rsseg evaluate --checkpoint best.pt --scene area2.tif --labels area2_labels.tif
    """
    from rsseg.device import resolve_device
    from rsseg.errors import RssegError
    from rsseg.io.atomic import atomic_output
    from rsseg.io.outputs import check_outputs
    from rsseg.models import load_checkpoint
    from rsseg.train.evaluation import evaluate_patches, evaluate_scene
    from rsseg.train.metrics import ConfusionMatrix, compute_metrics, format_table

    if bool(data) == bool(scenes):
        raise RssegError(f"{checkpoint}: give either --data (patch folder) or --scene/--labels")
    if len(scenes) != len(labels):
        raise RssegError(f"{checkpoint}: one --labels per --scene ({len(scenes)} scenes, {len(labels)} labels)")
    json_path = output or checkpoint.with_name(f"{checkpoint.stem}_eval.json")
    check_outputs({"--json": json_path}, [checkpoint, *scenes, *labels], overwrite)
    dev = resolve_device(device)
    model, card = load_checkpoint(checkpoint, dev)
    unpredicted = 0
    if data:
        matrix = evaluate_patches(model, card, data, split, tta, batch_size, dev, progress=not quiet)
        source = {"data": str(data), "split": split}
    else:
        matrix = ConfusionMatrix(card.num_classes, card.classes.ignore_index)
        for scene, label in zip(scenes, labels):
            part, missing = evaluate_scene(model, card, scene, label, tta, batch_size, str(dev), progress=not quiet)
            matrix.matrix += part.matrix
            unpredicted += missing
        source = {"scenes": [str(s) for s in scenes], "labels": [str(p) for p in labels]}
    metrics = compute_metrics(matrix.matrix, card.classes.names, card.classes.excluded_from_mean)
    metrics.update(checkpoint=str(checkpoint), tta=tta, unpredicted_labelled_pixels=unpredicted, **source)
    click.echo(format_table(metrics))
    with atomic_output(json_path, overwrite) as tmp:
        tmp.write_text(json.dumps(metrics, indent=1))
    click.echo(f"{metrics['pixels']} labelled pixels evaluated"
               + (f" ({unpredicted} left unpredicted as nodata)" if unpredicted else "") + f" -> {json_path}")

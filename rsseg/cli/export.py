"""``rsseg export``: a model file to ONNX, with its model card, checked against PyTorch."""

from __future__ import annotations

from pathlib import Path

import click

from rsseg.cli import options as opt


@click.command()
@click.argument("model", type=opt.EXISTING_FILE)
@opt.output("ONNX file to write (default: MODEL with the suffix .onnx).")
@click.option("--tile", type=opt.POSITIVE_INT,
              help="Window size a fixed-size graph is exported for (default: the model's training tile).")
@opt.overwrite
def export(model: Path, output: Path | None, tile: int | None, overwrite: bool) -> None:
    """Export MODEL (an rsseg .pt file) to ONNX (opset 17) for ONNX Runtime or QGIS Deepness.

    The file holds the whole model card and Deepness's metadata keys. The export is checked:
    ONNX Runtime and PyTorch logits on random input must agree within 1e-4 × max(1, abs(logit)),
    or nothing is written.
    """
    from rsseg.models import load_checkpoint
    from rsseg.models.onnx_export import export_onnx

    output = output or model.with_suffix(".onnx")
    net, card = load_checkpoint(model, "cpu")
    click.echo(export_onnx(net, card, output, overwrite=overwrite, tile=tile).summary_line())

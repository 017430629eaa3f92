"""``rsseg export``: a model file to ONNX, with its model card, checked against PyTorch (or, INT8, against FP32)."""

from __future__ import annotations

from pathlib import Path

import click

from rsseg.cli import options as opt


@click.command()
@click.argument("model", type=opt.EXISTING_FILE)
@opt.output("ONNX file to write (default: MODEL with the suffix .onnx, or .int8.onnx with --int8; "
            ".stac.json with --stac).")
@click.option("--tile", type=opt.POSITIVE_INT,
              help="Window size a fixed-size graph is exported for (default: the model's training tile).")
@click.option("--stac", is_flag=True,
              help="Write the model's STAC Item (Machine Learning Model extension) instead of an ONNX file.")
@click.option("--int8", is_flag=True,
              help="Quantise statically to INT8 (QOperator, per-channel weights); needs --calibrate.")
@opt.calibrate
@click.option("--calibration-windows", type=click.IntRange(min=2), default=64, show_default=True,
              help="With --int8: windows drawn from --calibrate; a quarter are held back to measure the result.")
@opt.overwrite
@opt.quiet
def export(model: Path, output: Path | None, tile: int | None, stac: bool, int8: bool, calibrate: tuple[Path, ...],
           calibration_windows: int, overwrite: bool, quiet: bool) -> None:
    """Export MODEL (an rsseg .pt file) to ONNX (opset 17) for ONNX Runtime or QGIS Deepness.

    The file holds the whole model card and Deepness's metadata keys. The export is checked:
    ONNX Runtime and PyTorch logits on random input must agree within 1e-4 × max(1, abs(logit)),
    or nothing is written. With --int8, activations are calibrated on windows of the --calibrate
    scenes or patch folders, and the INT8 graph must agree with the FP32 one on at least 98 % of
    the pixels of held-back windows, or nothing is written.
    """
    from rsseg.io.outputs import check_outputs
    from rsseg.models import load_checkpoint

    if stac:
        if int8 or tile:
            raise click.UsageError("--stac describes the model file as it is: no --int8 or --tile")
        _export_stac(model, output or model.with_suffix(".stac.json"), overwrite)
        return
    if int8 and not calibrate:
        raise click.UsageError("--int8 needs calibration data: --calibrate SCENE_OR_FOLDER (repeatable)")
    if calibrate and not int8:
        raise click.UsageError("--calibrate applies to --int8 only")
    output = output or model.with_suffix(".int8.onnx" if int8 else ".onnx")
    check_outputs({"-o": output}, [model, *calibrate], overwrite)
    net, card = load_checkpoint(model, "cpu")
    if int8:
        from rsseg.models.quantize import export_int8

        report = export_int8(net, card, output, calibrate, overwrite=overwrite, tile=tile,
                             windows=calibration_windows, progress=not quiet)
        click.echo(report.summary_line())
        return
    from rsseg.models.onnx_export import export_onnx

    click.echo(export_onnx(net, card, output, overwrite=overwrite, tile=tile).summary_line())


def _export_stac(model: Path, output: Path, overwrite: bool) -> None:
    """Write MODEL's STAC Item (MLM extension), its weights asset relative to it."""
    import datetime

    from rsseg.models import load_checkpoint
    from rsseg.tiling.stac import model_item, write_item

    _, card = load_checkpoint(model, "cpu")
    when = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    path = write_item(model_item(card, str(model.resolve()), output.resolve(), when), overwrite)
    click.echo(f"STAC Item of {model.name} (MLM extension) -> {path}")

"""``rsseg models``: every registered architecture with its parameters, GFLOPs and CPU time."""

from __future__ import annotations

import click
from tqdm import tqdm

from rsseg.cli import options as opt
from rsseg.device import torch_threads
from rsseg.models import list_models
from rsseg.models.profile import ModelProfile, profile_model

COLUMNS = ("name", "paper", "default backbone", "params (M)", "GFLOPs", "CPU ms")


def _cells(p: ModelProfile) -> list[str]:
    ms = "-" if p.cpu_ms is None else f"{p.cpu_ms:.0f}"
    return [p.name, p.paper, p.backbone, f"{p.params / 1e6:.2f}", f"{p.gflops:.1f}", ms]


def format_table(profiles: list[ModelProfile], markdown: bool = False) -> str:
    """The profiles as an aligned text table, or as a markdown table."""
    rows = [list(COLUMNS)] + [_cells(p) for p in profiles]
    if markdown:
        lines = ["| " + " | ".join(r) + " |" for r in rows]
        lines.insert(1, "|" + "---|" * len(COLUMNS))
        return "\n".join(lines)
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


@click.command("models")
@click.option("--size", type=opt.POSITIVE_INT, default=512, show_default=True,
              help="Side of the square test input (multiple of 32).")
@click.option("--in-channels", type=opt.POSITIVE_INT, default=3, show_default=True, help="Input bands.")
@click.option("--num-classes", type=click.IntRange(2, 255), default=6, show_default=True, help="Output classes.")
@click.option("--timing/--no-timing", default=True, show_default=True, help="Measure CPU milliseconds per tile.")
@opt.threads
@click.option("--markdown", is_flag=True, help="Print a README-ready markdown table.")
@opt.quiet
def models(size: int, in_channels: int, num_classes: int, timing: bool, threads: int | None,
           markdown: bool, quiet: bool) -> None:
    """List the registered models: paper, default backbone, parameters, GFLOPs and CPU ms.

    Models are built with random weights (nothing is downloaded) and run on one
    IN_CHANNELS×SIZE×SIZE input; FLOPs count two per multiply-add (torch.utils.flop_counter).
    """
    if size % 32:
        raise click.BadParameter(f"{size} is not a multiple of 32", param_hint="--size")
    with torch_threads(threads) as used:
        profiles = [profile_model(e.name, size, in_channels, num_classes, timing=timing)
                    for e in tqdm(list_models(), desc="profiling", unit="model", disable=quiet)]
    click.echo(format_table(profiles, markdown))
    click.echo(f"{len(profiles)} models profiled at 1×{in_channels}×{size}×{size}"
               + (f", CPU ms with {used} thread(s)" if timing else ""), err=True)

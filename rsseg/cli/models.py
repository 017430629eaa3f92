"""``rsseg models``: every registered architecture; with ``--profile``, its parameters, GFLOPs and CPU time."""

from __future__ import annotations

import click

from rsseg.cli import options as opt

COLUMNS = ("name", "paper", "default backbone")
PROFILE_COLUMNS = ("params (M)", "GFLOPs", "CPU ms")
PROFILE_OPTIONS = ("size", "in_channels", "num_classes", "timing", "threads")  # measured with --profile only


def format_table(rows: list[list[str]], columns: tuple[str, ...], markdown: bool = False) -> str:
    """``rows`` under ``columns`` as an aligned text table, or as a markdown table."""
    rows = [list(columns)] + rows
    if markdown:
        lines = ["| " + " | ".join(r) + " |" for r in rows]
        lines.insert(1, "|" + "---|" * len(columns))
        return "\n".join(lines)
    widths = [max(len(r[i]) for r in rows) for i in range(len(columns))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


@click.command("models")
@click.option("--profile", is_flag=True,
              help="Build each model and measure parameters, GFLOPs and CPU ms (takes about a minute).")
@click.option("--size", type=opt.POSITIVE_INT, default=512, show_default=True,
              help="With --profile: side of the square test input (multiple of 32).")
@click.option("--in-channels", type=opt.POSITIVE_INT, default=3, show_default=True,
              help="With --profile: input bands.")
@click.option("--num-classes", type=click.IntRange(2, 255), default=6, show_default=True,
              help="With --profile: output classes.")
@click.option("--timing/--no-timing", default=True, show_default=True,
              help="With --profile: measure CPU milliseconds per tile.")
@opt.threads
@click.option("--markdown", is_flag=True, help="Print a README-ready markdown table.")
@opt.quiet
@click.pass_context
def models(ctx: click.Context, profile: bool, size: int, in_channels: int, num_classes: int, timing: bool,
           threads: int | None, markdown: bool, quiet: bool) -> None:
    """List the registered models: name, paper and default backbone.

    With --profile, models are built with random weights (nothing is downloaded) and run on one
    IN_CHANNELS×SIZE×SIZE input; FLOPs count two per multiply-add (torch.utils.flop_counter).
    """
    if not profile:
        given = [name for name in PROFILE_OPTIONS
                 if ctx.get_parameter_source(name) is not click.core.ParameterSource.DEFAULT]
        if given:
            raise click.UsageError(f"--{given[0].replace('_', '-')} applies to --profile only")
    elif size % 32:
        raise click.BadParameter(f"{size} is not a multiple of 32", param_hint="--size")
    from tqdm import tqdm

    from rsseg.models import list_models

    entries = list_models()
    if not profile:
        click.echo(format_table([[e.name, e.paper, e.default_backbone] for e in entries], COLUMNS, markdown))
        click.echo(f"{len(entries)} models (--profile measures parameters, GFLOPs and CPU ms)", err=True)
        return
    from rsseg.device import torch_threads
    from rsseg.models.profile import profile_model

    with torch_threads(threads) as used:
        profiles = [profile_model(e.name, size, in_channels, num_classes, timing=timing)
                    for e in tqdm(entries, desc="profiling", unit="model", disable=quiet)]
    rows = [[p.name, p.paper, p.backbone, f"{p.params / 1e6:.2f}", f"{p.gflops:.1f}",
             "-" if p.cpu_ms is None else f"{p.cpu_ms:.0f}"] for p in profiles]
    click.echo(format_table(rows, COLUMNS + PROFILE_COLUMNS, markdown))
    click.echo(f"{len(profiles)} models profiled at 1×{in_channels}×{size}×{size}"
               + (f", CPU ms with {used} thread(s)" if timing else ""), err=True)

"""``rsseg train``: train a model on a patch folder (one process, or every rank under torchrun)."""

from __future__ import annotations

from pathlib import Path

import click

from rsseg.cli import options as opt


@click.command()
@click.option("--config", "config_path", type=opt.FILE, help="YAML config, e.g. configs/vaihingen/manet.yaml.")
@click.option("--data", type=opt.FOLDER, help="Patch folder (data.root).")
@click.option("--model", help="Registered model name (model.name), see `rsseg models`.")
@click.option("--epochs", type=opt.POSITIVE_INT, help="train.epochs (default 50, or as many as --max-minutes allows).")
@click.option("--max-minutes", type=opt.POSITIVE_FLOAT,
              help="train.max_minutes: stop when this time is spent; the LR schedule ends with it.")
@click.option("--batch-size", type=opt.POSITIVE_INT, help="train.batch_size (per process).")
@click.option("--tile", type=click.IntRange(min=32), help="data.tile: training crop size.")
@opt.output("Run folder (train.out; default: runs/<dataset>-<model>).", folder=True)
@opt.device(default=None)
@click.option("--workers", type=opt.NON_NEGATIVE_INT, help="DataLoader workers per process (data.workers).")
@opt.threads
@click.option("--set", "overrides", multiple=True, metavar="SECTION.KEY=VALUE",
              help="Override any config value, e.g. --set model.backbone=resnet18 (repeatable).")
@click.option("--init", metavar="default|PATH",
              help="train.init: start from the bundled default model or a model file (.pt); other classes "
                   "keep its encoder and decoder and get a new classifier.")
@click.option("--resume", type=opt.FOLDER, help="Continue the run in this folder where it stopped.")
@opt.overwrite
@opt.quiet
def train(config_path: Path | None, data: Path | None, model: str | None, epochs: int | None,
          max_minutes: float | None, batch_size: int | None, tile: int | None, output: Path | None,
          device: str | None, workers: int | None, threads: int | None, overrides: tuple[str, ...],
          init: str | None, resume: Path | None, overwrite: bool, quiet: bool) -> None:
    """Train on a patch folder made by `rsseg prepare`; writes best.pt, last.pt, logs and plots.

    \b
    rsseg train --config configs/vaihingen/manet.yaml
    rsseg train --data patches/ --model unet --epochs 30 --batch-size 8 --tile 256 -o runs/demo
    rsseg train --data patches/ --max-minutes 15 -o runs/quick
    rsseg train --data patches/ --init default --max-minutes 15 -o runs/my-city
    torchrun --nproc_per_node 4 --no-python rsseg train --config configs/potsdam/abcnet.yaml
    """
    from rsseg.errors import RssegError
    from rsseg.train.config import build_config
    from rsseg.train.run_folder import CONFIG_FILE
    from rsseg.train.trainer import train as run_training

    options = {("data", "root"): data, ("model", "name"): model, ("train", "epochs"): epochs,
               ("train", "max_minutes"): max_minutes,
               ("train", "batch_size"): batch_size, ("data", "tile"): tile, ("train", "out"): output,
               ("train", "device"): device, ("data", "workers"): workers, ("train", "threads"): threads,
               ("train", "init"): init}
    updates: dict = {}
    for (section, key), value in options.items():
        if value is not None:
            updates.setdefault(section, {})[key] = str(value) if isinstance(value, Path) else value
    if resume is not None:
        if config_path is not None:
            raise RssegError(f"{resume}: --resume uses the run's own {CONFIG_FILE}; drop --config")
        if init is not None:
            raise RssegError(f"{resume}: --resume continues from the run's own state; drop --init")
        config_path = resume / CONFIG_FILE
        updates.setdefault("train", {})["out"] = str(resume)
    config = build_config(config_path, overrides, updates)
    result = run_training(config, resume=resume is not None, overwrite=overwrite, progress=not quiet)
    if result.rank != 0:
        return
    click.echo(f"trained {result.epochs} epochs ({result.seconds / 60:.1f} min this run); "
               f"best {result.metric} {100 * result.score:.2f} at epoch {result.best_epoch} -> {result.best_model}")

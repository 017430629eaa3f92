"""``rsseg train``: train a model on a patch folder (one process, or every rank under torchrun)."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
              help="YAML config, e.g. configs/vaihingen/manet.yaml.")
@click.option("--data", type=click.Path(file_okay=False, path_type=Path), help="Patch folder (data.root).")
@click.option("--model", help="Registered model name (model.name), see `rsseg models`.")
@click.option("--epochs", type=int, help="train.epochs (default 50, or as many as --max-minutes allows).")
@click.option("--max-minutes", type=float,
              help="train.max_minutes: stop when this time is spent; the LR schedule ends with it.")
@click.option("--batch-size", type=int, help="train.batch_size (per process).")
@click.option("--tile", type=int, help="data.tile: training crop size.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), help="Run folder (train.out).")
@click.option("--device", help="auto, cpu, cuda or cuda:N (train.device).")
@click.option("--workers", type=int, help="DataLoader workers per process (data.workers).")
@click.option("--threads", type=int, help="CPU threads of the training process (train.threads).")
@click.option("--set", "overrides", multiple=True, metavar="SECTION.KEY=VALUE",
              help="Override any config value, e.g. --set model.backbone=resnet18 (repeatable).")
@click.option("--resume", type=click.Path(file_okay=False, path_type=Path),
              help="Continue the run in this folder where it stopped.")
@click.option("--overwrite", is_flag=True, help="Start again in a non-empty run folder.")
def train(config_path: Path | None, data: Path | None, model: str | None, epochs: int | None,
          max_minutes: float | None, batch_size: int | None, tile: int | None, out: Path | None,
          device: str | None, workers: int | None, threads: int | None, overrides: tuple[str, ...], resume: Path | None, overwrite: bool) -> None:
    """Train on a patch folder made by `rsseg prepare`; writes best.pt, last.pt, logs and plots.

    \b
    rsseg train --config configs/vaihingen/manet.yaml
    rsseg train --data patches/ --model unet --epochs 30 --batch-size 8 --tile 256 --out runs/demo
    rsseg train --data patches/ --max-minutes 15 --out runs/quick
    torchrun --nproc_per_node 4 --no-python rsseg train --config configs/potsdam/abcnet.yaml
    """
    from rsseg.errors import RssegError
    from rsseg.train.config import build_config
    from rsseg.train.metrics import metric_value
    from rsseg.train.trainer import CONFIG_FILE, train as run_training

    options = {("data", "root"): data, ("model", "name"): model, ("train", "epochs"): epochs,
               ("train", "max_minutes"): max_minutes,
               ("train", "batch_size"): batch_size, ("data", "tile"): tile, ("train", "out"): out,
               ("train", "device"): device, ("data", "workers"): workers, ("train", "threads"): threads}
    updates: dict = {}
    for (section, key), value in options.items():
        if value is not None:
            updates.setdefault(section, {})[key] = str(value) if isinstance(value, Path) else value
    if resume is not None:
        if config_path is not None:
            raise RssegError(f"{resume}: --resume uses the run's own {CONFIG_FILE}; drop --config")
        config_path = resume / CONFIG_FILE
        updates.setdefault("train", {})["out"] = str(resume)
    config = build_config(config_path, overrides, updates)
    best = run_training(config, resume=resume is not None, overwrite=overwrite)
    if best["rank"] != 0:
        return
    select = config["train"]["select_metric"]
    click.echo(f"trained {best['epochs_done']} epochs ({best['seconds_total'] / 60:.1f} min this run); "
               f"best {select} {100 * metric_value(best['metrics'], select):.2f} at epoch {best['epoch']} "
               f"-> {Path(best['run_dir']) / 'best.pt'}")

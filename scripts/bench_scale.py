#!/usr/bin/env python
"""Benchmark prediction at scale: torchrun ranks, memory per rank, resume cost, vectorize memory.

Prints
1. the speed-up of 2 ranks over 1 process (``torchrun --nproc-per-node 2``, one CPU thread per
   rank, as one rank per GPU would be) on a list of scenes and on one scene split by rows,
   and whether the outputs are byte-identical;
2. the peak RSS of each rank for a split scene of height H and 2H (it should stay flat);
3. the resume overhead: a run killed (SIGKILL) when half of its bands are finished, then
   started again; its total wall time over an uninterrupted run (target <= 1.1);
4. the vectorize memory ratio, from ``scripts/bench_vectorize.py`` (windowed ÷ whole-array).

Scenes are generated (``rsseg.synthetic``) and segmented with the bundled default model:

    python scripts/bench_scale.py --workdir /tmp/bench_scale
    python scripts/bench_scale.py --quick        # smaller scenes
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import bench_record

from rsseg.synthetic import write_scene

ROOT = Path(__file__).resolve().parents[1]
WRAPPER = """import atexit, os, resource, sys
atexit.register(lambda: print(f"PEAK_RSS_MB rank={os.environ.get('RANK', '0')} "
                              f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f}", file=sys.stderr))
from rsseg.cli import main
main(sys.argv[1:])
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def command(wrapper: Path, args: list[str], ranks: int) -> list[str]:
    if ranks == 1:
        return [sys.executable, str(wrapper), *args]
    return [shutil.which("torchrun") or "torchrun", "--nproc-per-node", str(ranks), "--master-port", str(free_port()),
            str(wrapper), *args]


def predict(wrapper: Path, args: list[str], ranks: int) -> tuple[float, list[float]]:
    """Wall seconds of ``rsseg predict ARGS`` on ``ranks`` processes, and each rank's peak RSS (MB)."""
    start = time.perf_counter()
    proc = subprocess.run(command(wrapper, ["predict", *args, "--quiet", "--threads", "1", "--device", "cpu"], ranks),
                          capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"rsseg predict failed:\n{proc.stdout}\n{proc.stderr}")
    rss = {int(r): float(m) for r, m in re.findall(r"PEAK_RSS_MB rank=(\d+) (\d+)", proc.stderr)}
    return seconds, [rss[r] for r in sorted(rss)]


def same_outputs(a: Path, b: Path) -> bool:
    names = sorted(p.name for p in a.glob("*_mask.tif")) + sorted(p.name for p in a.glob("*_probs.tif"))
    return bool(names) and all((a / n).read_bytes() == (b / n).read_bytes() for n in names)


def killed_at_half(wrapper: Path, args: list[str], journal: Path, bands: int) -> float:
    """Wall seconds of a run SIGKILLed once half of its ``bands`` are in the journal."""
    start = time.perf_counter()
    proc = subprocess.Popen(command(wrapper, ["predict", *args, "--quiet", "--threads", "1", "--device", "cpu"], 1),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while len(glob.glob(str(journal / "rows-*.npz"))) < bands // 2 and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, default=Path("bench_scale_out"))
    parser.add_argument("--quick", action="store_true", help="smaller scenes (a smoke run)")
    parser.add_argument("--side", type=int, help="side of each listed scene (default 512; 256 with --quick)")
    parser.add_argument("--width", type=int, help="width of the split scenes (default 512; 256 with --quick)")
    parser.add_argument("--height", type=int, help="height H of the split scene (default 2048; 1024 with --quick)")
    parser.add_argument("--vectorize-size", type=int, default=16384, help="mask side for bench_vectorize.py")
    args = parser.parse_args()
    work = args.workdir
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    wrapper = work / "rsseg_rss.py"
    wrapper.write_text(WRAPPER)
    side, width, height = (256, 256, 1024) if args.quick else (512, 512, 2048)
    side, width, height = args.side or side, args.width or width, args.height or height

    scenes = [work / f"list_{i}.tif" for i in range(4)]
    for i, s in enumerate(scenes):
        write_scene(s, None, side, side, seed=i, progress=False)
    one = work / "one.tif"
    write_scene(one, None, width, height, seed=9, progress=False)
    tall = work / "tall.tif"
    write_scene(tall, None, width, 2 * height, seed=9, progress=False)

    record = bench_record.start("scale" + ("-quick" if args.quick else ""), vars(args))
    rows = []
    for key, label, inputs in (("list", f"list of 4 scenes {side}²", scenes),
                               ("one", f"one scene {width}×{height} split by rows", [one])):
        times = []
        for ranks in (1, 2):
            out = work / f"out_{key}_{ranks}"
            times.append(predict(wrapper, [*map(str, inputs), "--out-dir", str(out), "--probs"], ranks)[0])
        same = same_outputs(work / f"out_{key}_1", work / f"out_{key}_2")
        rows.append([label, round(times[0], 1), round(times[1], 1), f"{times[0] / times[1]:.2f}×", same])
    record.table("One thread per rank", ["work", "1 process (s)", "2 ranks (s)", "speed-up", "byte-identical"], rows)

    rss = {}
    for scene in (one, tall):
        rss[scene.stem] = predict(wrapper, [str(scene), "--out-dir", str(work / f"rss_{scene.stem}")], 2)[1]
    record.table("Split scene, 2 ranks", ["scene", "peak RSS rank 0 (MB)", "peak RSS rank 1 (MB)"],
                 [[f"{width}×{height * (2 if stem == 'tall' else 1)}", round(r[0]), round(r[1])]
                  for stem, r in rss.items()])
    print("peak RSS per rank, 2H ÷ H: " + ", ".join(f"rank {r} {rss['tall'][r] / rss['one'][r]:.2f}x" for r in (0, 1)))

    bands = -(-2 * height // 512)
    base = [str(tall), "--probs", "-o"]
    uninterrupted = predict(wrapper, [*base[:-1], str(work / "ru_probs.tif"), "-o", str(work / "ru_mask.tif")], 1)[0]
    resume_args = [str(tall), "--probs", str(work / "rk_probs.tif"), "-o", str(work / "rk_mask.tif")]
    first = killed_at_half(wrapper, resume_args, work / ".rk_mask.tif.partial", bands)
    second = predict(wrapper, resume_args, 1)[0]
    same = all((work / f"ru_{k}.tif").read_bytes() == (work / f"rk_{k}.tif").read_bytes() for k in ("mask", "probs"))
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import torch, rasterio, rsseg.tiling, rsseg.cli.predict"], check=True)
    startup = time.perf_counter() - start
    print(f"\nresume: uninterrupted {uninterrupted:.1f} s; killed at {bands // 2} of {bands} bands after {first:.1f} s "
          f"+ resumed run {second:.1f} s = {first + second:.1f} s -> {(first + second) / uninterrupted:.2f}x "
          f"(target <= 1.1); byte-identical: {same}; one process start-up (imports) takes {startup:.1f} s")
    record.table(f"Kill and resume, {width}×{2 * height}, one process",
                 ["uninterrupted (s)", "killed at half (s)", "resumed (s)", "total ÷ uninterrupted", "byte-identical",
                  "process start-up (s)"],
                 [[round(uninterrupted, 1), round(first, 1), round(second, 1),
                   round((first + second) / uninterrupted, 2), same, round(startup, 1)]])
    record.save()

    bench_vectorize = ROOT / "scripts" / "bench_vectorize.py"
    if bench_vectorize.is_file():
        proc = subprocess.run([sys.executable, str(bench_vectorize), "--size", str(args.vectorize_size), "--objects",
                               str(args.vectorize_size ** 2 // 2800), "--workdir", str(work / "vectorize"), "--json"],
                              capture_output=True, text=True)
        try:
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            print(f"\nvectorize memory ({args.vectorize_size}² mask, background included): windowed "
                  f"{r['windowed_peak_rss_mb']} MB / whole-array {r['whole_peak_rss_mb']} MB = "
                  f"{r['memory_ratio']:.2f}x (target <= 0.25); equal output: {r['equal_output']}")
        except (IndexError, ValueError, KeyError):
            print(f"\nvectorize memory ratio: bench_vectorize.py failed: {(proc.stdout + proc.stderr)[-500:]}")
    else:
        print("\nvectorize memory ratio: scripts/bench_vectorize.py not found")


if __name__ == "__main__":
    main()

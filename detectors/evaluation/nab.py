"""Numenta Anomaly Benchmark harness: run detectors in streaming order and score them.

Rules kept: each file is processed on its own; the first ``min(floor(0.15 n), 750)`` rows (NAB's
probationary period) are the only rows used for fitting; every row is scored causally (the score
of row ``i`` depends on rows ``0..i`` only); labels are never read here -- only the scorer reads
them; no file or category is treated differently.

Result files follow NAB's layout, ``<results_dir>/<algorithm>/<category>/<algorithm>_<file>.csv``
with columns ``timestamp, value, anomaly_score, label``; ``label`` holds the detector's own 0/1
decision at the chosen sensitivity (not the ground truth). A second folder,
``<algorithm>_decisions``, holds the same rows with ``anomaly_score`` set to that decision, and is
scored at the fixed threshold 0.5: ``own_standard`` is what the detector scores on its own, without
the benchmark choosing a threshold for it.

The scorer is ``nab_score.py`` from the benchmark folder (``NAB_ROOT``, by default
``../shared/benchmarks`` beside the repository), imported by path.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import sys
import time
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from detectors.algorithms.postprocess import DEFAULT_SENSITIVITY, detect

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_BENCH_ROOT = Path(os.environ.get("NAB_ROOT", REPO_ROOT.parent / "shared" / "benchmarks"))
PROBATION_FRACTION = 0.15
PROBATION_CAP = 750


def load_scorer(bench_root: Path = DEFAULT_BENCH_ROOT) -> Any:
    """Import ``nab_score.py`` (it lives outside this package) and return the module."""
    path = Path(bench_root) / "nab_score.py"
    spec = importlib.util.spec_from_file_location("nab_score", path)
    if spec is None or spec.loader is None:
        raise FileNotFoundError(f"NAB scorer not found at {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("nab_score", module)
    spec.loader.exec_module(module)
    return module


def data_files(bench_root: Path = DEFAULT_BENCH_ROOT) -> list[str]:
    data_dir = Path(bench_root) / "nab" / "data"
    return sorted(str(p.relative_to(data_dir)) for p in data_dir.rglob("*.csv"))


def probation_rows(n: int) -> int:
    return int(min(math.floor(PROBATION_FRACTION * n), PROBATION_CAP))


def run_file(task: tuple[str, str, Path, Path, float, dict[str, Any] | None]) -> tuple[str, float]:
    """Run one algorithm on one data file and write its two result files; returns (file, seconds)."""
    key, rel, bench_root, out_dir, sensitivity, params = task
    started = time.perf_counter()
    df = pd.read_csv(Path(bench_root) / "nab" / "data" / rel)
    values = df["value"].to_numpy(float)
    result = detect(
        key,
        values,
        pd.to_datetime(df["timestamp"]),
        train_size=max(1, probation_rows(len(df))),
        sensitivity=sensitivity,
        params=params,
    )
    category, name = rel.split("/", 1)
    decisions = result.is_anomaly.astype(int)
    for folder, score in ((key, result.anomaly_score), (f"{key}_decisions", decisions.astype(float))):
        target = Path(out_dir) / folder / category / f"{key}_{name}"
        target.parent.mkdir(parents=True, exist_ok=True)
        frame = pd.DataFrame(
            {"timestamp": df["timestamp"], "value": df["value"], "anomaly_score": score, "label": decisions}
        )
        frame.to_csv(target, index=False)
    return rel, time.perf_counter() - started


def _read_scores(scorer: Any, bench: Any, folder: Path) -> dict[str, np.ndarray]:
    return scorer.read_results(bench, folder)


def run_nab(
    algorithms: list[str],
    results_dir: str | Path,
    processes: int = 2,
    sensitivity: float = DEFAULT_SENSITIVITY,
    params: dict[str, dict[str, Any]] | None = None,
    bench_root: str | Path = DEFAULT_BENCH_ROOT,
) -> dict[str, dict[str, float]]:
    """Run each algorithm over every NAB file and score it.

    Returns ``{key: {"standard", "low_fp", "low_fn", "own_standard", "seconds"}}``: the three
    normalised NAB scores with the scorer's per-profile threshold search over ``anomaly_score``,
    the standard score of the detector's own 0/1 decisions at ``sensitivity``, and wall time.
    """
    bench_root = Path(bench_root)
    results_dir = Path(results_dir)
    scorer = load_scorer(bench_root)
    files = data_files(bench_root)
    bench = scorer.NabBenchmark(bench_root / "nab")
    report: dict[str, dict[str, float]] = {}
    ctx = get_context("fork") if sys.platform != "win32" else get_context()
    for key in algorithms:
        started = time.perf_counter()
        tasks = [(key, rel, bench_root, results_dir, sensitivity, (params or {}).get(key)) for rel in files]
        if processes > 1:
            with ctx.Pool(processes) as pool:
                list(pool.imap_unordered(run_file, tasks))
        else:
            for task in tasks:
                run_file(task)
        elapsed = time.perf_counter() - started
        swept = bench.score(_read_scores(scorer, bench, results_dir / key))
        own = bench.score(_read_scores(scorer, bench, results_dir / f"{key}_decisions"), fixed_threshold=0.5)
        report[key] = {
            "standard": swept["standard"].normalised,
            "low_fp": swept["reward_low_FP_rate"].normalised,
            "low_fn": swept["reward_low_FN_rate"].normalised,
            "own_standard": own["standard"].normalised,
            "threshold": swept["standard"].threshold,
            "seconds": elapsed,
        }
    return report


def format_report(report: dict[str, dict[str, float]]) -> str:
    lines = [f"{'algorithm':<18} {'standard':>9} {'low_fp':>8} {'low_fn':>8} {'own_std':>8} {'thr':>6} {'secs':>7}"]
    for key, r in report.items():
        lines.append(
            f"{key:<18} {r['standard']:9.2f} {r['low_fp']:8.2f} {r['low_fn']:8.2f} {r['own_standard']:8.2f} "
            f"{r['threshold']:6.3f} {r['seconds']:7.1f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run detectors on the Numenta Anomaly Benchmark.")
    parser.add_argument("--algorithms", default="auto", help="comma-separated registry keys")
    parser.add_argument("--results-dir", type=Path, default=REPO_ROOT / "var" / "nab_results")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--sensitivity", type=float, default=DEFAULT_SENSITIVITY)
    parser.add_argument("--params", default=None, help='JSON {"key": {params}} passed to the detectors')
    parser.add_argument("--bench-root", type=Path, default=DEFAULT_BENCH_ROOT)
    parser.add_argument("--json", type=Path, default=None, help="also write the report as JSON here")
    args = parser.parse_args(argv)
    report = run_nab(
        [k.strip() for k in args.algorithms.split(",") if k.strip()],
        args.results_dir,
        processes=args.processes,
        sensitivity=args.sensitivity,
        params=json.loads(args.params) if args.params else None,
        bench_root=args.bench_root,
    )
    print(format_report(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

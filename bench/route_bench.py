"""Benchmark riskrouter.route() in-process: one action at a time, and in bulk.

Run from the repository root:

    DJANGO_SETTINGS_MODULE=config.settings .venv/bin/python bench/route_bench.py [--n 3000]

Routes golden actions (cycled to --n) through the live entry point, the way
the web server calls it, with the active model if one is promoted (otherwise a
model trained here in memory on the golden set). In the same run it times the
bare `predict_proba` of the same fitted scikit-learn pipeline on one
precomputed row, so the cost of our feature extraction, policy and reasons
shows as a ratio. Numbers are wall-clock on whatever else the machine is doing:
compare ratios from one run, not absolute figures across runs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django

django.setup()

import numpy as np

import riskrouter
from riskrouter import registry
from riskrouter.golden import load_golden
from riskrouter.model import train
from riskrouter.router import Router

P99_BUDGET_MS = 2.0


def timings(fn, items, *, warmup: int = 200) -> np.ndarray:
    for item in items[:warmup]:
        fn(item)
    out = np.empty(len(items))
    for i, item in enumerate(items):
        started = time.perf_counter()
        fn(item)
        out[i] = time.perf_counter() - started
    return out * 1000


def describe(name: str, ms: np.ndarray) -> str:
    p50, p90, p99 = np.percentile(ms, [50, 90, 99])
    return f"{name:<44} p50 {p50:7.3f} ms  p90 {p90:7.3f} ms  p99 {p99:7.3f} ms  max {ms.max():7.3f} ms  (n={len(ms)})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=3000, help="actions to route one at a time (golden cycled)")
    parser.add_argument("--batch", type=int, default=1000, help="batch size for the predict_proba batch figure")
    args = parser.parse_args()

    golden = load_golden()
    actions = [golden[i % len(golden)].action for i in range(args.n)]

    live = registry.current_router()
    if live.model is not None:
        router, source = None, f"active model {live.model.version} (riskrouter.route, as the web server calls it)"
        model = live.model
    else:
        model = train([row.labeled() for row in golden], config=registry.model_config())
        router = Router(policy=live.policy, model=model)
        source = f"no active model in the database: trained {model.version} in memory on {len(golden)} golden rows"

    def route_one(action):
        return riskrouter.route(action, router=router) if router is not None else riskrouter.route(action)

    print(f"riskrouter benchmark: {len(golden)} golden actions cycled to {args.n}; {source}")
    print(f"policy {live.policy.version}; python {sys.version.split()[0]}; cores {os.cpu_count()}")
    print()

    route_ms = timings(route_one, actions)
    print(describe("route() one action (end to end)", route_ms))

    features = [model.features(a) for a in actions]
    feature_ms = timings(model.features, actions)
    print(describe("  of which feature extraction (analyze+featurize)", feature_ms))
    hand_ms = timings(model.predict_one, features)
    print(describe("  of which hand-wired predict (dot + softmax)", hand_ms))

    sample = features[: min(len(features), 1000)]
    bare_ms = timings(lambda f: model.pipeline.predict_proba([f]), sample, warmup=50)
    print(describe("bare pipeline.predict_proba, one row", bare_ms))
    print()

    started = time.perf_counter()
    for action in actions:
        route_one(action)
    serial = time.perf_counter() - started
    print(
        f"route() serial throughput: {len(actions) / serial:,.0f} actions/s on one core ({serial * 1000:.0f} ms for {len(actions)})"
    )

    batch = features[: args.batch]
    model.pipeline.predict_proba(batch)
    runs = []
    for _ in range(5):
        started = time.perf_counter()
        model.pipeline.predict_proba(batch)
        runs.append(time.perf_counter() - started)
    best = statistics.median(runs)
    print(
        f"pipeline.predict_proba batch of {len(batch)} precomputed rows: {best * 1000:.1f} ms "
        f"({len(batch) / best:,.0f} rows/s)"
    )
    batch_actions = actions[: args.batch]
    started = time.perf_counter()
    model.pipeline.predict_proba([model.features(a) for a in batch_actions])
    full_batch = time.perf_counter() - started
    print(
        f"features + predict_proba batch of {len(batch_actions)} actions: {full_batch * 1000:.1f} ms "
        f"({len(batch_actions) / full_batch:,.0f} actions/s)"
    )
    print()

    route_p50, route_p99 = np.percentile(route_ms, [50, 99])
    bare_p50 = np.percentile(bare_ms, 50)
    print(
        f"ratio route() p50 / bare predict_proba p50: {route_p50 / bare_p50:.2f}  "
        f"(route {route_p50:.3f} ms vs predict_proba {bare_p50:.3f} ms)"
    )
    verdict = "OK" if route_p99 <= P99_BUDGET_MS else "OVER BUDGET"
    print(f"route() p99 {route_p99:.3f} ms against the {P99_BUDGET_MS} ms budget: {verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

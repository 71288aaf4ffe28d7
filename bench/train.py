"""Benchmark: training throughput (samples/s) of L2 and L3, end to end through the fit loop.

    python bench/train.py                                   # synthetic arrays of the real layout
    python bench/train.py --data-dir data                   # the prepared arrays of real partitions
    python bench/train.py --device cuda                     # on a GPU (bf16 autocast)

End to end = batches drawn from the device-resident arrays, forward, loss, backward, optimizer
step (the training loop of hrlxf_core.training.loop). Targets (issue 4, on an H100): L2 >= 2,000,000
and L3 >= 300,000 samples/s. Prepared arrays are cached by content (hrlxf_core.training.prepare),
so a relaunch does not re-process data; the time to prepare is printed separately.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from hrlxf_core.models.l2 import L2Config, L2Net
from hrlxf_core.models.l3 import L3Config, L3Net
from hrlxf_core.models.l3_inputs import N_CONTEXT
from hrlxf_core.training.l2_train import _l2_loss
from hrlxf_core.training.l3_train import _loss as _l3_loss
from hrlxf_core.training.loop import TrainConfig, fit, resolve_device


def synthetic(kind: str, n: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    if kind == "l2":
        return {
            "x_static": rng.normal(size=(n, 12)).astype(np.float32),
            "x_temporal": rng.normal(size=(n, 41, 10)).astype(np.float32),
            "x_role": np.ones((n, 2), np.float32),
            "goal": np.abs(rng.normal(size=(n, 16))).astype(np.float32),
            "goal_mask": np.ones((n, 16), np.float32),
        }
    return {
        "hist": rng.normal(size=(n, 16, 4)).astype(np.float32),
        "hist_len": rng.integers(0, 17, n),
        "context": rng.normal(size=(n, N_CONTEXT)).astype(np.float32),
        "time_mask": rng.random((n, 41)) > 0.3,
        "op_mask": np.ones((n, 3), bool),
        "op_label": rng.integers(0, 3, n),
        "has_counter": rng.random(n) > 0.3,
        "residual_target": (rng.normal(size=(n, 2)) * 0.1).astype(np.float32),
        "delta_label": rng.integers(0, 10, n),
        "returns": rng.random(n).astype(np.float32),
    }


def real_arrays(kind: str, data_dir: Path) -> dict[str, np.ndarray]:
    from hrlxf_core.training.checkpoint import feature_schema, schema_hash
    from hrlxf_core.training.l2_train import macro_arrays
    from hrlxf_core.training.l3_train import micro_arrays
    from hrlxf_core.training.prepare import prepared

    asset, name, build = (
        ("macro_samples", "macro.parquet", macro_arrays)
        if kind == "l2"
        else ("micro_samples_goal_hat", "micro_goal_hat.parquet", micro_arrays)
    )
    files = sorted((data_dir / asset).glob(f"*/{name}"))
    if not files:
        raise SystemExit(f"no {asset} files under {data_dir}")
    t0 = time.perf_counter()
    arrays, pdir, reused = prepared(
        kind, files, schema_hash(feature_schema(kind)), data_dir / ".train" / "prepared", build
    )
    print(
        f"  {kind}: {len(files)} partition(s), prepared in {time.perf_counter() - t0:.2f}s ({'reused' if reused else 'built'}: {pdir})"
    )
    return {k: np.asarray(v) for k, v in arrays.items() if k != "world_id"}


def bench(kind: str, arrays: dict[str, np.ndarray], device: str, batch: int, epochs: int) -> float:
    torch.manual_seed(0)
    model, loss, mcfg = (
        (L2Net(L2Config()), _l2_loss, L2Config())
        if kind == "l2"
        else (L3Net(L3Config()), _l3_loss, L3Config())
    )
    cfg = TrainConfig(max_epochs=epochs + 1, batch_size=batch, patience=100, device=device, warmup_epochs=0)
    n_val = min(2048, len(next(iter(arrays.values()))) // 10)
    val = {k: v[:n_val] for k, v in arrays.items()}
    with tempfile.TemporaryDirectory() as tmp:
        res = fit(model, arrays, val, loss, cfg, Path(tmp), kind, asdict(mcfg), log=lambda _: None)
    rates = [h["samples_per_s"] for h in res.history[1:]]  # the first epoch includes warm-up
    return float(np.median(rates))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--data-dir", type=Path, default=None)
    ap.add_argument("--n-l2", type=int, default=200_000)
    ap.add_argument("--n-l3", type=int, default=100_000)
    ap.add_argument("--batch-l2", type=int, default=4096)
    ap.add_argument("--batch-l3", type=int, default=2048)
    ap.add_argument("--epochs", type=int, default=2)
    args = ap.parse_args()
    dev = resolve_device(args.device)
    name = (
        torch.cuda.get_device_name(dev)
        if dev.type == "cuda"
        else f"CPU {platform.processor() or platform.machine()} ({torch.get_num_threads()} threads)"
    )
    print(f"device: {name}; torch {torch.__version__}")
    for kind, n, batch, target in (
        ("l2", args.n_l2, args.batch_l2, 2_000_000),
        ("l3", args.n_l3, args.batch_l3, 300_000),
    ):
        arrays = real_arrays(kind, args.data_dir) if args.data_dir else synthetic(kind, n)
        rows = len(next(iter(arrays.values())))
        rate = bench(kind, arrays, str(dev), batch, args.epochs)
        print(
            f"{kind}: {rows:,} samples, batch {batch}: {rate:,.0f} samples/s end to end (H100 target {target:,})"
        )


if __name__ == "__main__":
    main()

"""Training-curve pictures (PNG bytes) for asset metadata."""

from __future__ import annotations

import io
import os

#: Loss terms drawn in the per-term panel when a loss function reports them (``parts``).
TERM_KEYS = ("op_ce", "residual_nll", "delta_ce", "value_mse", "kl")


def curve_png(
    history: list[dict[str, float]], title: str, extra: list[tuple[str, list[dict[str, float]]]] | None = None
) -> bytes:
    """Train/validation loss by epoch (and optional further phases) as a PNG; when the epochs
    carry per-term losses (``val_op_ce``, ``val_residual_nll``, ...), a second panel draws each
    term's train and validation curve, so a head that stops learning is visible."""
    os.environ.setdefault("MPLCONFIGDIR", os.path.join(os.environ.get("HRLXF_DATA_DIR", "data"), ".mpl"))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    phases = [("", history)] + list(extra or [])
    terms = [k for k in TERM_KEYS if any(f"val_{k}" in h for _, hist in phases for h in hist)]
    fig, axes = plt.subplots(1, 2 if terms else 1, figsize=(11 if terms else 6, 3.4), dpi=100)
    ax = axes[0] if terms else axes
    offset = 0
    for name, hist in phases:
        if not hist:
            continue
        ep = [offset + h["epoch"] - hist[0]["epoch"] for h in hist]
        ax.plot(ep, [h["train_loss"] for h in hist], label=f"{name} train".strip())
        ax.plot(ep, [h["val_loss"] for h in hist], "--", label=f"{name} validation".strip())
        if terms:
            for i, k in enumerate(terms):
                color = f"C{i}"
                tag = f"{name} {k}".strip()
                axes[1].plot(ep, [h.get(f"train_{k}", float("nan")) for h in hist], color=color, label=tag)
                axes[1].plot(ep, [h.get(f"val_{k}", float("nan")) for h in hist], "--", color=color)
        offset = ep[-1] + 1
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if terms:
        axes[1].set_xlabel("epoch")
        axes[1].set_ylabel("loss term (solid train, dashed validation)")
        axes[1].set_title("loss terms", fontsize=10)
        axes[1].grid(alpha=0.3)
        axes[1].legend(fontsize=7)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def _figure(ncols: int):
    os.environ.setdefault("MPLCONFIGDIR", os.path.join(os.environ.get("HRLXF_DATA_DIR", "data"), ".mpl"))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, ncols, figsize=(4 * ncols, 3.2), dpi=100)
    return plt, fig, axes


def _png(plt, fig) -> bytes:
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def macro_summary_png(goal, mask) -> bytes:
    """L2 labels at a glance: mean quantity per bucket and side, and the price-ratio spread."""
    import numpy as np

    plt, fig, (a, b) = _figure(2)
    g, m = np.asarray(goal), np.asarray(mask) > 0
    nb = g.shape[1] // 4
    for j, (name, col) in enumerate((("buy", 0), ("sell", 2))):
        vals = [
            g[m[:, 4 * k + col], 4 * k + col].mean() if m[:, 4 * k + col].any() else 0.0 for k in range(nb)
        ]
        a.bar(np.arange(nb) + 0.4 * j, vals, width=0.4, label=name)
    a.set_xticks(np.arange(nb) + 0.2, [f"bucket {k}" for k in range(nb)])
    a.set_ylabel("mean quantity label (days of production)")
    a.legend(fontsize=8)
    prices = g[:, 1::2][m[:, 1::2]]
    b.hist(prices, bins=40)
    b.set_xlabel("price label (ratio to trading price)")
    b.set_ylabel("labels")
    return _png(plt, fig)


def micro_summary_png(op_label, res_q, res_p, has_counter) -> bytes:
    """L3 labels at a glance: op classes, and the residuals of counter-offers."""
    import numpy as np

    plt, fig, (a, b, c) = _figure(3)
    op = np.asarray(op_label)
    a.bar(["ACCEPT", "OFFER", "END"], [(op == k).sum() for k in range(3)])
    a.set_ylabel("decisions")
    hc = np.asarray(has_counter, bool)
    b.hist(np.asarray(res_q)[hc], bins=60)
    b.set_xlabel("residual q (expert − baseline, units)")
    c.hist(np.asarray(res_p)[hc], bins=60)
    c.set_xlabel("residual p (expert − baseline)")
    return _png(plt, fig)


def online_curve_png(history) -> bytes:
    """Online fine-tuning (``hrl_online_policy``): mean rollout score (and the opponents' in the
    same worlds) and each layer's KL to the BC policy, per iteration."""
    plt, fig, axes = _figure(2)
    it = [h["iteration"] for h in history]
    axes[0].plot(it, [h["mean_score"] for h in history], "o-", label="LitaAgentHRL (rollout policy)")
    for n in sorted({n for h in history for n in h.get("opponent_mean", {})}):
        axes[0].plot(it, [h["opponent_mean"].get(n, float("nan")) for h in history], "--", label=n)
    axes[0].set_xlabel("iteration")
    axes[0].set_ylabel("mean world score")
    for g in ("l2", "l3", "l4"):
        axes[1].plot(
            it, [h.get("kl_to_bc", {}).get(g, float("nan")) for h in history], "o-", label=f"KL({g} ‖ BC)"
        )
    axes[1].set_xlabel("iteration")
    axes[1].set_ylabel("KL to the BC policy")
    for ax in axes:
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    return _png(plt, fig)

"""Training-curve pictures (PNG bytes) for asset metadata."""

from __future__ import annotations

import io
import os


def curve_png(
    history: list[dict[str, float]], title: str, extra: list[tuple[str, list[dict[str, float]]]] | None = None
) -> bytes:
    """Train/validation loss by epoch (and optional further phases) as a PNG."""
    os.environ.setdefault("MPLCONFIGDIR", os.path.join(os.environ.get("HRLXF_DATA_DIR", "data"), ".mpl"))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.4), dpi=100)
    phases = [("", history)] + list(extra or [])
    offset = 0
    for name, hist in phases:
        if not hist:
            continue
        ep = [offset + h["epoch"] - hist[0]["epoch"] for h in hist]
        ax.plot(ep, [h["train_loss"] for h in hist], label=f"{name} train".strip())
        ax.plot(ep, [h["val_loss"] for h in hist], "--", label=f"{name} validation".strip())
        offset = ep[-1] + 1
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()

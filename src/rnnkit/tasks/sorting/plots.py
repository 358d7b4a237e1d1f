"""Figures of the sorting task: exact match against sequence length."""

from __future__ import annotations

from pathlib import Path


def plot_accuracy_by_length(
    acc: dict[int, float], train_range: tuple[int, int], path: str | Path, title: str = ""
) -> Path:
    """A PNG of exact match against sequence length, the training lengths shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.axvspan(train_range[0] - 0.5, train_range[1] + 0.5, color="0.9", label="training lengths")
    ax.plot(list(acc), [100 * v for v in acc.values()], marker="o")
    ax.set_xlabel("sequence length")
    ax.set_ylabel("exact match (%)")
    ax.set_ylim(-2, 102)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path

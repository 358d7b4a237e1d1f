"""Figures of the seq2seq task: the attention weights of one decoded source."""

from __future__ import annotations

from pathlib import Path

from torch import Tensor


def plot_attention_weights(
    source_tokens: list[str], output_tokens: list[str], weights: Tensor, title: str,
    path: str | Path,
) -> Path:  # fmt: skip
    """A PNG heat map of ``weights (T_out, S)``: output tokens down, source tokens across."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    src, out = source_tokens, output_tokens
    fig, ax = plt.subplots(figsize=(max(4, 0.3 * len(src) + 1.5), max(3, 0.3 * len(out) + 1)))
    ax.imshow(weights.numpy(), cmap="viridis", aspect="auto", vmin=0, vmax=1)
    ax.set_xticks(range(len(src)), [repr(t)[1:-1] for t in src], fontsize=8)
    ax.set_yticks(range(len(out)), out, fontsize=8)
    ax.set_xlabel("source")
    ax.set_ylabel("output")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path

"""Figures of the captioning task: images with their generated and reference captions."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def plot_captions(
    images: np.ndarray,
    generated: list[list[str]],
    references: list[list[list[str]]],
    path: str | Path,
    titles: list[str] | None = None,
    columns: int = 4,
) -> Path:
    """A PNG grid of ``images (N, C, H, W)`` in ``[0, 1]`` with generated (and reference) captions;
    a generated caption matching no reference is drawn in red."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(generated)
    rows = max(1, -(-n // columns))
    aspect = images.shape[3] / images.shape[2]  # W / H
    width = 3.0 if aspect > 1.5 else 2.4
    fig, axes = plt.subplots(
        rows, columns, figsize=(columns * width, rows * (width / aspect + 0.8)), squeeze=False
    )
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k >= n:
            continue
        img = images[k]
        if img.shape[0] == 1:
            ax.imshow(img[0], cmap="gray", vmin=0, vmax=1)
        else:
            ax.imshow(np.clip(img.transpose(1, 2, 0), 0, 1))
        refs = references[k] if k < len(references) else []
        gen = " ".join(generated[k])
        ok = not refs or gen in {" ".join(r) for r in refs}
        text = f"gen: {gen}"
        if refs:
            text += f"\nref: {' '.join(refs[0])}"
        if titles:
            text = f"{titles[k]}\n{text}"
        ax.set_title(text, fontsize=7, color="black" if ok else "red")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path

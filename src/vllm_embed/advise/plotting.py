"""`plot`: recall against bytes per vector, drawn with matplotlib (imported only here, on use)."""

from __future__ import annotations

from pathlib import Path

from vllm_embed.advise.result import Advice, AdviceRow


def plot(advice: Advice, path: str | Path) -> Path:
    """Draws recall@k against bytes per vector (log scale), one line per encoding, with the target.

    Needs matplotlib (`pip install "vllm-embed[plot]"`); the format follows the file suffix (`.png`, `.svg`,
    `.pdf`, ...).

    Returns:
        The path written.

    Raises:
        MissingDependencyError: Without matplotlib.
    """
    from vllm_embed._optional import require

    matplotlib = require("matplotlib", "advise --plot")
    matplotlib.use("Agg")  # files only: no display needed, none opened
    pyplot = require("matplotlib.pyplot", "advise --plot")
    figure, axes = pyplot.subplots(figsize=(8, 5))
    series: dict[str, list[AdviceRow]] = {}
    for row in advice.rows:
        series.setdefault(row.kind, []).append(row)
    for name, rows in series.items():
        rows = sorted(rows, key=lambda row: row.bytes_per_vector)
        xs, ys = [row.bytes_per_vector for row in rows], [row.recall_at_k for row in rows]
        axes.plot(xs, ys, marker="o", label=name)
        for row in rows:
            axes.annotate(str(row.dimensions), (row.bytes_per_vector, row.recall_at_k), fontsize=7)
    axes.axhline(advice.target_recall, color="grey", linestyle="--", label=f"target {advice.target_recall:g}")
    if advice.recommendation is not None:
        best = advice.recommendation
        axes.scatter([best.bytes_per_vector], [best.recall_at_k], s=160, facecolors="none", edgecolors="red")
    axes.set_xscale("log")
    axes.set_xlabel("bytes per vector (searched in RAM)")
    axes.set_ylabel(f"recall@{advice.top_k} vs native float32")
    axes.set_title(f"{advice.model}: {advice.sample_chunks} chunks, {advice.queries} queries")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()
    target = Path(path)
    figure.savefig(target, bbox_inches="tight")
    pyplot.close(figure)
    return target

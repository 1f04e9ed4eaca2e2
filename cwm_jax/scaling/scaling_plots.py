"""PNG plots of a sweep's fit (fit.json's content): loss vs compute, and optimal LR / batch size vs compute."""

import numpy as np
from matplotlib.figure import Figure

from cwm_jax.scaling.power_law import PowerLaw


def _line(ax, fit: dict, xs, label: str, **style):
    law = PowerLaw(**fit)
    ax.plot(xs, law(xs), label=f"{label}: {law.describe(label.split()[0])}", **style)


def plot_fit(fit: dict, loss_png: str, hyper_png: str):
    compute = np.array([p["compute"] for p in fit["frontier"]])
    xs = np.geomspace(compute.min() / 1.5, compute.max() * 1.5, 50)

    fig = Figure(figsize=(7, 4.5))

    ax = fig.subplots()
    for model, points in fit["envelopes"].items():
        c, loss = zip(*points, strict=True)
        ax.plot(c, loss, alpha=0.6, label=f"{model} envelope")
    ax.scatter(
        compute,
        [p["smoothed_loss"] for p in fit["frontier"]],
        color="black",
        zorder=3,
        label="best run per compute level",
    )
    _line(ax, fit["loss_vs_compute"], xs, "L fit", color="black", linestyle="--")
    ax.set(xscale="log", yscale="log", xlabel="compute C (FLOPs)", ylabel="smoothed training loss")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(loss_png, dpi=120)

    fig = Figure(figsize=(10, 4))

    axes = fig.subplots(1, 2)
    for ax, key, name, label, ylabel in (
        (axes[0], "lr_vs_compute", "optimal_lr", "LR", "optimal peak LR"),
        (axes[1], "batch_size_vs_compute", "optimal_batch_tokens", "BS", "optimal batch size (tokens)"),
    ):
        ax.scatter(compute, [p[name] for p in fit["frontier"]], color="black", zorder=3, label="optimum per level")
        _line(ax, fit[key], xs, f"{label} fit", color="C0")
        paper = fit["cwm_paper"][key]
        ax.plot(
            xs,
            paper["coefficient"] * xs ** paper["exponent"],
            color="gray",
            linestyle=":",
            label=f"CWM paper: {paper['coefficient']} · C^{paper['exponent']}",
        )
        ax.set(xscale="log", yscale="log", xlabel="compute C (FLOPs)", ylabel=ylabel)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(hyper_png, dpi=120)

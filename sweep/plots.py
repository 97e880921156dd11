"""Drawing: matplotlib figures from the plain records of :mod:`sweep.analysis`.

Every function takes analysis records (or an Optuna study, for Optuna's own plots) and returns
a ``matplotlib.figure.Figure``; none saves or shows anything, :mod:`sweep.report` does that.
Our figures are built on ``Figure`` directly, not through pyplot, so they hold no global
state; Optuna's plots go through pyplot, so call :func:`close` on every figure when done.

The Agg backend is selected on import: the report runs headless.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")

import numpy as np
from matplotlib import colors, patheffects, ticker
from matplotlib import pyplot as plt
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle

from .analysis import Curve, GridLandscape, LandscapePoint, MomentumComparison, colour_limits

# 100 dpi: a 10 x 6 inch figure is a 1000 x 600 pixel PNG.
DPI = 100
SIZE = (10.0, 6.0)
# The highlighted curves: one categorical colour each (tab10's, without its grey).
RANKED_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2",
                  "#bcbd22", "#17becf")
OBJECTIVE_COLOURS = "magma_r"  # dark = low = good
DIVERGED_COLOUR = "#d62728"
BEST_COLOUR = "#ffd700"
# How the best trial is starred on every landscape.
BEST_STAR = dict(marker="*", s=380, color=BEST_COLOUR, edgecolors="black", lw=1.2, zorder=5)


def close(figure: Figure) -> None:
    """Release a figure (needed for pyplot-made ones, harmless for the others)."""
    plt.close(figure)


def _figure(**subplots) -> tuple[Figure, object]:
    figure = Figure(figsize=SIZE, dpi=DPI, layout="constrained")
    return figure, figure.subplots(**subplots)


ONE_SETTING = "only one setting trained so far:\na landscape needs two or more"


def _empty(ax, message: str) -> None:
    ax.text(
        0.5,
        0.5,
        message,
        ha="center",
        va="center",
        transform=ax.transAxes,
        fontsize=13,
        color="0.35",
    )
    ax.set_xticks([])
    ax.set_yticks([])


class _PlainLogFormatter(ticker.LogFormatter):
    """Log-axis labels as plain numbers (0.05, 0.1, 1) rather than 5e-02 or 5 x 10^-2."""

    def _num_to_string(self, x, vmin, vmax):
        return f"{x:g}"


def _plain_log_ticks(axis) -> None:
    """Plain labels on a log axis; minor ticks labelled only when it spans about a decade."""
    axis.set_major_formatter(_PlainLogFormatter())
    axis.set_minor_formatter(_PlainLogFormatter(labelOnlyBase=False, minor_thresholds=(1, 0.5)))


def curves_figure(
    curves: Sequence[Curve], *, title: str, target_loss: float | None = None
) -> Figure:
    """Validation loss per epoch of every trial, log y.

    The ranked trials (``Curve.rank``; rank 1 is the study's answer) are drawn thick, each in a
    colour of its own that its legend entry shows, with their learning rate and momentum; the
    others thin, grey and faint. The y axis covers the trained curves' useful range (up to a
    little past their 90th percentile); a diverged trial's curve ends at its divergence epoch
    with a red x on the top edge, and what lies above the axis is clipped.
    """
    figure, ax = _figure()
    ax.set_title(title)
    if not curves:
        _empty(ax, "no trained trials yet")
        return figure
    faint = [c for c in curves if c.rank is None]
    # Hundreds of faint curves must not add up to a solid band.
    faint_alpha = min(0.35, 3 / math.sqrt(max(len(faint), 1)))
    ranked = sorted((c for c in curves if c.rank is not None), key=lambda c: c.rank)
    for c in faint:
        ax.plot(c.epochs, c.val_loss, color="0.55", lw=0.7, alpha=faint_alpha, zorder=1)
    outline = [patheffects.Stroke(linewidth=3.6, foreground="white"), patheffects.Normal()]
    for c in ranked:
        name = "the answer" if c.rank == 1 else f"#{c.rank}"
        ax.plot(
            c.epochs,
            c.val_loss,
            color=RANKED_COLOURS[(c.rank - 1) % len(RANKED_COLOURS)],
            lw=2.2,
            zorder=3 + 1 / c.rank,
            path_effects=outline,
            label=f"{name}: trial {c.number}, lr {c.learning_rate:.3g}, momentum {c.momentum:.2g}",
        )
    handles, labels = ax.get_legend_handles_labels()
    trained = [c.val_loss[np.isfinite(c.val_loss)] for c in curves if not c.diverged_epoch]
    values = np.concatenate([*trained, *[c.val_loss[np.isfinite(c.val_loss)] for c in ranked]]
                            or [np.array([1.0])])
    values = values[values > 0]
    if len(values):
        ax.set_ylim(0.9 * values.min(), 1.3 * np.percentile(values, 90))
    diverged = [c for c in curves if c.diverged_epoch]
    if diverged:
        top_edge = ax.get_xaxis_transform()  # x in data, y in axes fraction
        ax.plot([c.diverged_epoch for c in diverged], [0.98] * len(diverged), "x",
                color=DIVERGED_COLOUR, ms=7, mew=1.6, zorder=4, transform=top_edge,
                clip_on=False)
        handles.append(Line2D([], [], ls="", marker="x", color=DIVERGED_COLOUR, ms=7, mew=1.6))
        labels.append(
            f"diverged ({len(diverged)} trial{'s' if len(diverged) > 1 else ''}; "
            "its curve ends there)")
    if target_loss is not None:
        ax.axhline(target_loss, color="0.3", ls="--", lw=1, zorder=2)
        handles.append(Line2D([], [], color="0.3", ls="--", lw=1))
        labels.append(f"target loss {target_loss:g}")
    handles.append(Line2D([], [], color="0.55", lw=0.9))
    labels.append(f"the other {len(faint)} trials")
    ax.set_yscale("log")
    _plain_log_ticks(ax.yaxis)
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation loss (log scale)")
    ax.set_xlim(left=0)
    ax.grid(True, which="major", alpha=0.3)
    # Below the axes, off the data.
    figure.legend(handles, labels, loc="outside lower center", ncol=2, fontsize=8.5,
                  frameon=False)
    return figure


def landscape_figure(
    points: Sequence[LandscapePoint],
    *,
    title: str,
    objective_label: str,
    best: int | None = None,
    grid: GridLandscape | None = None,
) -> Figure:
    """The objective over the searched parameters, drawn the way the trials allow.

    With ``grid``: :func:`grid_landscape_figure`. With trials at one setting only, a message
    (a one-point landscape shows nothing). Otherwise, when one parameter never varies:
    :func:`line_landscape_figure` along the other; else :func:`scatter_landscape_figure`.
    ``best`` (a trial number) is starred.
    """
    if grid is not None:
        return grid_landscape_figure(
            grid, points, title=title, objective_label=objective_label, best=best
        )
    if len({(p.learning_rate, p.momentum) for p in points}) == 1:
        figure, ax = _figure()
        ax.set_title(title)
        _empty(ax, ONE_SETTING)
        return figure
    if points and len({p.momentum for p in points}) == 1:
        return line_landscape_figure(
            points, title=title, objective_label=objective_label, best=best, along="learning_rate"
        )
    if points and len({p.learning_rate for p in points}) == 1:
        return line_landscape_figure(
            points, title=title, objective_label=objective_label, best=best, along="momentum"
        )
    return scatter_landscape_figure(
        points, title=title, objective_label=objective_label, best=best
    )


def _objective_colours(points: Sequence[LandscapePoint]):
    """(colour map, log norm or None, colour limits or None) over the COMPLETE trials' values:
    logarithmic, clipped at the 5th and 95th percentiles (see ``analysis.colour_limits``)."""
    limits = colour_limits([p.value for p in points if p.value is not None])
    cmap = matplotlib.colormaps[OBJECTIVE_COLOURS].copy()
    norm = colors.LogNorm(*limits, clip=False) if limits else None
    return cmap, norm, limits


def grid_landscape_figure(
    grid: GridLandscape,
    points: Sequence[LandscapePoint],
    *,
    title: str,
    objective_label: str,
    best: int | None = None,
) -> Figure:
    """Every cell of a grid study filled with its objective over log learning rate x momentum,
    diverged cells hatched red so the stability boundary shows, pruned ones grey."""
    figure, ax = _figure()
    ax.set_title(title)
    if not points:
        _empty(ax, "no trained trials yet")
        return figure
    cmap, norm, limits = _objective_colours(points)
    x_edges = 10**grid.log10_learning_rate_edges
    cmap = cmap.with_extremes(bad="0.85")
    mesh = ax.pcolormesh(
        x_edges,
        grid.momentum_edges,
        np.ma.masked_invalid(grid.value),
        cmap=cmap,
        norm=norm,
        shading="flat",
    )
    for (i, j), state in np.ndenumerate(grid.state):
        if state in ("diverged", "pruned"):
            ax.add_patch(
                Rectangle(
                    (x_edges[j], grid.momentum_edges[i]),
                    x_edges[j + 1] - x_edges[j],
                    grid.momentum_edges[i + 1] - grid.momentum_edges[i],
                    facecolor="#f4c7c3" if state == "diverged" else "0.75",
                    edgecolor=DIVERGED_COLOUR if state == "diverged" else "0.5",
                    hatch="xxx" if state == "diverged" else "...",
                    lw=0,
                    zorder=2,
                )
            )
    handles = [Patch(facecolor="#f4c7c3", edgecolor=DIVERGED_COLOUR, hatch="xxx", label="diverged")]
    if (grid.state == "pruned").any():
        handles.append(Patch(facecolor="0.75", edgecolor="0.5", hatch="...", label="pruned"))
    if (grid.state == "").any():
        handles.append(Patch(facecolor="0.85", label="not trained yet"))
    ax.set_xlim(x_edges[0], x_edges[-1])
    ax.set_ylim(grid.momentum_edges[0], grid.momentum_edges[-1])
    return _finish_plane(
        figure, ax, points, objective_label, best, handles, mesh if limits else None, limits
    )


def scatter_landscape_figure(
    points: Sequence[LandscapePoint],
    *,
    title: str,
    objective_label: str,
    best: int | None = None,
    x_label: str = "learning rate (log scale)",
) -> Figure:
    """The trials over log learning rate x momentum: COMPLETE ones coloured by their objective,
    pruned ones as grey rings, diverged ones as red x. ``x_label`` names the x axis: the
    points' ``learning_rate`` may be another rate (``analysis.effective_points``)."""
    figure, ax = _figure()
    ax.set_title(title)
    if not points:
        _empty(ax, "no trained trials yet")
        return figure
    cmap, norm, limits = _objective_colours(points)
    done = [p for p in points if p.value is not None]
    pruned = [p for p in points if p.state == "pruned"]
    diverged = [p for p in points if p.state == "diverged"]
    mappable = None
    if pruned:
        ax.scatter(
            [p.learning_rate for p in pruned],
            [p.momentum for p in pruned],
            s=14,
            facecolors="none",
            edgecolors="0.7",
            lw=0.6,
            alpha=0.6,
            zorder=1,
            label=f"pruned ({len(pruned)})",
        )
    if done:
        mappable = ax.scatter(
            [p.learning_rate for p in done],
            [p.momentum for p in done],
            c=[p.value for p in done],
            cmap=cmap,
            norm=norm,
            s=30,
            edgecolors="0.25",
            lw=0.4,
            zorder=3,
            label=f"complete ({len(done)})",
        )
    if diverged:
        ax.scatter(
            [p.learning_rate for p in diverged],
            [p.momentum for p in diverged],
            marker="x",
            s=32,
            color=DIVERGED_COLOUR,
            lw=1.4,
            zorder=3,
            label=f"diverged ({len(diverged)})",
        )
    handles = ax.get_legend_handles_labels()[0]
    if done:
        # The legend's marker for the coloured points: one mid-scale colour, not the first point's.
        handles[[h.get_label() for h in handles].index(f"complete ({len(done)})")] = Line2D(
            [],
            [],
            ls="",
            marker="o",
            color=cmap(0.45),
            mec="0.25",
            label=f"complete ({len(done)}; colour: objective)",
        )
    ax.margins(0.04)
    return _finish_plane(figure, ax, points, objective_label, best, handles, mappable, limits,
                         x_label)


def _finish_plane(
    figure, ax, points, objective_label: str, best, handles, mappable, limits,
    x_label: str = "learning rate (log scale)",
) -> Figure:
    """What both plane landscapes share: the best trial's star, the log learning-rate axis, the
    legend below and the objective's colour bar."""
    chosen = [p for p in points if p.number == best]
    if chosen:
        ax.scatter([chosen[0].learning_rate], [chosen[0].momentum], **BEST_STAR)
        handles.append(
            Line2D(
                [],
                [],
                ls="",
                marker="*",
                ms=15,
                color=BEST_COLOUR,
                mec="black",
                label=f"best: trial {best} (lr {chosen[0].learning_rate:.3g}, "
                f"momentum {chosen[0].momentum:.2f})",
            )
        )
    ax.set_xscale("log")
    _plain_log_ticks(ax.xaxis)
    ax.set_xlabel(x_label)
    ax.set_ylabel("momentum")
    if handles:
        # Below the axes: the interesting corner (large lr, large momentum) stays visible.
        figure.legend(
            handles=handles,
            loc="outside lower center",
            ncol=min(len(handles), 4),
            fontsize=9,
            frameon=False,
        )
    if mappable is not None:
        values = [p.value for p in points if p.value is not None]
        clipped = (min(values) < limits[0], max(values) > limits[1])
        extend = {(True, True): "both", (True, False): "min", (False, True): "max"}
        bar = figure.colorbar(mappable, ax=ax, pad=0.01, extend=extend.get(clipped, "neither"))
        bar.set_label(f"{objective_label} (log scale, 5th to 95th percentile)")
        _plain_log_ticks(bar.ax.yaxis)
    return figure


def line_landscape_figure(
    points: Sequence[LandscapePoint],
    *,
    title: str,
    objective_label: str,
    best: int | None = None,
    along: str = "learning_rate",
) -> Figure:
    """One parameter varies (the other is fixed): the objective against it, log y.

    along: "learning_rate" or "momentum", the parameter that varies. Pruned trials sit as rings
    on the bottom edge and diverged ones as red x on the top edge: they have no comparable
    objective value, only a place on the x axis.
    """
    figure, ax = _figure()
    ax.set_title(title)
    if not points:
        _empty(ax, "no trained trials yet")
        return figure
    label = objective_label

    def x(p):
        return getattr(p, along)

    done = [p for p in points if p.value is not None]
    edge = ax.get_xaxis_transform()  # x in data, y in axes fraction
    if done:
        ax.scatter(
            [x(p) for p in done],
            [p.value for p in done],
            s=30,
            color="#1f4e79",
            zorder=3,
            label=f"complete ({len(done)})",
        )
        ax.set_yscale("log")
        _plain_log_ticks(ax.yaxis)
    pruned = [p for p in points if p.state == "pruned"]
    if pruned:
        ax.scatter(
            [x(p) for p in pruned],
            [0.03] * len(pruned),
            s=22,
            facecolors="none",
            edgecolors="0.45",
            transform=edge,
            clip_on=False,
            zorder=3,
            label=f"pruned ({len(pruned)}; bottom edge)",
        )
    diverged = [p for p in points if p.state == "diverged"]
    if diverged:
        ax.scatter(
            [x(p) for p in diverged],
            [0.97] * len(diverged),
            marker="x",
            s=32,
            color=DIVERGED_COLOUR,
            transform=edge,
            clip_on=False,
            zorder=3,
            label=f"diverged ({len(diverged)}; top edge)",
        )
    chosen = [p for p in done if p.number == best]
    if chosen:
        ax.scatter(
            [x(chosen[0])],
            [chosen[0].value],
            **BEST_STAR,
            label=f"best: trial {best} (lr {chosen[0].learning_rate:.3g}, "
            f"momentum {chosen[0].momentum:.2f})",
        )
    fixed = "momentum" if along == "learning_rate" else "learning rate"
    value = points[0].momentum if along == "learning_rate" else points[0].learning_rate
    if along == "learning_rate":
        ax.set_xscale("log")
        _plain_log_ticks(ax.xaxis)
        ax.set_xlabel(f"learning rate (log scale); {fixed} fixed at {value:g}")
    else:
        ax.set_xlabel(f"momentum; {fixed} fixed at {value:g}")
    ax.set_ylabel(f"{label} (log scale)")
    ax.grid(True, alpha=0.3)
    figure.legend(loc="outside lower center", ncol=4, fontsize=9, frameon=False)
    return figure


def _reached(epoch: int | None, epochs: int) -> str:
    return f"not reached in {epochs} epochs" if epoch is None else f"epoch {epoch}"


def _side_label(kind: str, side, target: float) -> str:
    r = side.record
    where = f"{side.study} trial {r.number}" + (" (baseline)" if r.baseline else "")
    epochs = len(r.val_loss)
    return (
        f"{kind}: {where}, lr {r.learning_rate:.3g}, momentum {r.momentum:.2f}\n"
        f"    loss {target:g} reached: "
        f"validation {_reached(side.epochs_to_target, epochs)}, "
        f"training {_reached(side.train_epochs_to_target, epochs)}; "
        f"final validation loss {side.final_val_loss:.3g}"
    )


def comparison_figure(comparison: MomentumComparison, *, title: str) -> Figure:
    """The best momentum setting's validation (left) and training (right) loss beside the best
    tuned no-momentum setting's (mean curves over their networks), log y, with the target loss
    and the epoch each first reaches it. Without a tuned no-momentum side, the title says so."""
    figure, (val_ax, train_ax) = _figure(ncols=2, sharey=True)
    sides = [
        ("momentum", comparison.momentum, "#1f77b4"),
        ("no momentum", comparison.no_momentum, "#ff7f0e"),
    ]
    present = [(kind, side, colour) for kind, side, colour in sides if side is not None]
    if comparison.no_momentum is None and comparison.momentum is not None:
        title += (
            "\n(no tuned baseline: no study here tried momentum 0 at several learning rates; "
            "only a tuned one is compared)"
        )
    elif comparison.momentum is None and comparison.no_momentum is not None:
        title += (
            "\n(no completed trial with momentum > 0 here or in a comparable study: "
            "no-momentum trial only)"
        )
    figure.suptitle(title)
    if not present:
        _empty(val_ax, "no completed trials yet")
        _empty(train_ax, "")
        return figure
    target = comparison.target_loss
    for row, (kind, side, colour) in enumerate(present):
        r = side.record
        epochs = np.arange(1, len(r.val_loss) + 1)
        for ax, curve, reached in (
            (val_ax, r.val_loss, side.epochs_to_target),
            (train_ax, r.train_loss[: len(epochs)], side.train_epochs_to_target),
        ):
            ax.plot(epochs, curve, color=colour, lw=2, label=_side_label(kind, side, target))
            if reached is not None:
                ax.axvline(reached, color=colour, ls=":", lw=1.3)
                ax.plot(reached, curve[reached - 1], "o", color=colour, ms=7, mec="black", zorder=4)
                # At the top of the dotted line, one row per side, clear of the curves.
                ax.text(
                    reached,
                    0.97 - 0.07 * row,
                    f" epoch {reached}",
                    transform=ax.get_xaxis_transform(),
                    ha="left",
                    va="top",
                    color=colour,
                    fontsize=9,
                    fontweight="bold",
                    bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 1},
                )
    for ax, what in ((val_ax, "validation"), (train_ax, "training")):
        ax.axhline(target, color="0.3", ls="--", lw=1)
        ax.set_yscale("log")
        _plain_log_ticks(ax.yaxis)
        ax.set_xlabel("epoch")
        ax.set_title(f"{what} loss")
        ax.set_xlim(left=0)
        ax.grid(True, alpha=0.3)
    val_ax.set_ylabel("loss (log scale)")
    handles, labels = val_ax.get_legend_handles_labels()
    handles.append(Line2D([], [], color="0.3", ls="--", lw=1))
    labels.append(f"target loss {target:g} (dotted lines: the epoch it is first reached)")
    figure.legend(handles, labels, loc="outside lower center", ncol=1, fontsize=9, frameon=False)
    return figure


def _optuna_figure(draw, study) -> Figure:
    """Call one of Optuna's matplotlib plots with its style and warnings kept to itself."""
    import optuna

    with warnings.catch_warnings(), matplotlib.rc_context():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        ax = draw(study)
        figure = ax.figure
        figure.set_size_inches(*SIZE)
        figure.set_dpi(DPI)
    return figure


def history_figure(study, *, title: str) -> Figure:
    """Optuna's optimisation history (each COMPLETE trial's value and the best so far), log y
    when every value is positive, legend inside the axes."""
    from optuna.visualization.matplotlib import plot_optimization_history

    figure = _optuna_figure(plot_optimization_history, study)
    ax = figure.axes[0]
    ax.set_title(title)
    values = [t.value for t in study.get_trials(deepcopy=False) if t.value is not None]
    if values and min(values) > 0:
        ax.set_yscale("log")
        _plain_log_ticks(ax.yaxis)
    legend = figure.legends[0] if figure.legends else ax.get_legend()
    if legend is not None:
        legend.remove()
    ax.legend(loc="upper right", fontsize=9, framealpha=0.9)
    figure.set_layout_engine("constrained")
    return figure


def importance_figure(study, *, title: str) -> Figure:
    """Optuna's hyper-parameter importances (which of learning rate and momentum matters)."""
    from optuna.visualization.matplotlib import plot_param_importances

    figure = _optuna_figure(plot_param_importances, study)
    ax = figure.axes[0]
    for where in ("left", "right"):
        ax.set_title("", loc=where)  # Optuna's own title sits on the left, under ours
    ax.set_title(title)
    if ax.get_legend() is not None:
        ax.get_legend().remove()  # one objective: its legend only repeats the axis label
    figure.set_layout_engine("constrained")
    return figure

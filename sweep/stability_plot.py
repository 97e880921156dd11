"""Drawing the measured blow-up boundary beside its two predictions (:mod:`sweep.stability`).

One function, returning a ``matplotlib.figure.Figure`` built without pyplot (no global state);
the caller saves it. Matplotlib is imported when it draws, so importing this module is free.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .stability import LINEAR_NAME, Boundary, Fit, effective_step_name, predictions

MEASURED_COLOUR = "black"
EFFECTIVE_COLOUR = "#1f77b4"
LINEAR_COLOUR = "#d62728"
JUDGED_COLOUR = "0.92"


def draw_stability(boundaries: Sequence[Boundary], rule: str, fit: Fit | None = None):
    """The blow-up learning rate per momentum (points, with their intervals) and both
    predictions scaled by the momentum-0 boundary (lines over every momentum in between);
    the momenta ``fit`` judged at are shaded. Learning rate on a log scale.

    boundaries: :func:`sweep.stability.measure_boundary`'s. rule: their rule. fit:
    :func:`sweep.stability.which_fits`'s, or None.
    """
    from matplotlib.figure import Figure

    from .plots import DPI, SIZE, _plain_log_ticks

    figure = Figure(figsize=SIZE, dpi=DPI, layout="constrained")
    ax = figure.subplots()
    measured = [b for b in boundaries if b.blowup_learning_rate is not None]
    zero = next((b for b in boundaries if b.momentum == 0), None)
    top = max((b.momentum for b in boundaries), default=0.0)
    if fit is not None:
        for judged in fit.judged:
            ax.axvspan(judged.momentum - 0.008, judged.momentum + 0.008, color=JUDGED_COLOUR,
                       zorder=0, lw=0,
                       label="where the two predictions differ most" if judged is fit.judged[0]
                       else None)
    if zero is not None and zero.blowup_learning_rate is not None and top > 0:
        momenta = np.linspace(0.0, top, 400)
        lines = np.array([predictions(rule, zero.blowup_learning_rate, mu) for mu in momenta])
        ax.plot(momenta, lines[:, 0], color=EFFECTIVE_COLOUR, lw=2,
                label=effective_step_name(rule))
        ax.plot(momenta, lines[:, 1], color=LINEAR_COLOUR, lw=2, ls="--",
                label=LINEAR_NAME)
    if measured:
        networks = measured[0].networks
        coverage = measured[0].coverage
        x = np.array([b.momentum for b in measured])
        y = np.array([b.blowup_learning_rate for b in measured])
        # An interval the scan left open is drawn to the point itself.
        low = np.array([b.low if b.low is not None else b.blowup_learning_rate for b in measured])
        high = np.array([b.high if b.high is not None else b.blowup_learning_rate
                         for b in measured])
        ax.errorbar(x, y, yerr=[y - low, high - y], fmt="o", color=MEASURED_COLOUR, ms=6,
                    capsize=4, zorder=4,
                    label=f"measured: half of {networks} networks blew up "
                          f"({coverage:.1%} interval)")
    ax.set_yscale("log")
    _plain_log_ticks(ax.yaxis)
    ax.set_xlabel("momentum")
    ax.set_ylabel("learning rate")
    ax.set_title(f"Where training blows up ({rule} rule), beside two predictions scaled by the "
                 "measured momentum-0 boundary", fontsize=11)
    ax.grid(True, which="major", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="best", fontsize=9)
    else:
        ax.text(0.5, 0.5, "no boundary measured", ha="center", va="center",
                transform=ax.transAxes, color="0.35")
    return figure

"""matplotlib, which is optional (the `plots` extra): a figure on the Agg canvas, drawn
without a display, and its PNG bytes. The report, s140-compare and s140-tune draw their
charts through here."""

import io

MISSING = "matplotlib is not installed (`pip install 's140-trainer[plots]'`)"


def new_figure(**figure_kwargs):
    """A matplotlib Figure on the Agg canvas, or None when matplotlib is missing."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return None
    figure = Figure(**figure_kwargs)
    FigureCanvasAgg(figure)
    return figure


def integer_ticks(axis):
    """Whole numbers only on `axis` (epochs, trial numbers)."""
    from matplotlib.ticker import MaxNLocator

    axis.set_major_locator(MaxNLocator(integer=True))


def png(figure, **savefig_kwargs):
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", **savefig_kwargs)
    return buffer.getvalue()

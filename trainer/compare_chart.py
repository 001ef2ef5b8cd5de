"""The comparison's figure: every architecture's learning curves overlaid, as the
course's charts are (accuracy and loss panels, train solid and validation dashed, one
colour per architecture), with the bag-of-words baseline's val accuracy as a
horizontal line.

matplotlib is optional (the `plots` extra), through `trainer.charts` (the Agg canvas
and no pyplot): its absence costs the figure, not the comparison.
"""

from trainer import charts

# (panel title, history key): the two panels of the course's charts.
_PANELS = (("Accuracy", "accuracy"), ("Loss", "loss"))


def learning_curves_png(histories, *, baseline_val_accuracy=None, baseline_label="baseline"):
    """(PNG bytes, None), or (None, why no PNG).

    Args:
      histories: {architecture: history.json content}, in the order to draw them.
      baseline_val_accuracy: drawn as a horizontal line on the accuracy panel; None: none.
      baseline_label: its legend entry.
    """
    if not any(history.get(key) for history in histories.values() for _, key in _PANELS):
        return None, "no epoch was recorded"
    figure = charts.new_figure(figsize=(13, 5), dpi=100, layout="constrained")  # room for the legend
    if figure is None:
        return None, charts.MISSING
    for axes, (title, key) in zip(figure.subplots(1, 2), _PANELS):
        for index, (architecture, history) in enumerate(histories.items()):
            colour = f"C{index % 10}"
            for prefix, style, label in (("", "-", "train"), ("val_", "--", "val")):
                values = history.get(prefix + key) or []
                if values:
                    axes.plot(
                        range(1, len(values) + 1), values, style, color=colour, marker="o",
                        markersize=3, label=f"{architecture} {label}",
                    )
        if key == "accuracy" and baseline_val_accuracy is not None:
            axes.axhline(baseline_val_accuracy, color="black", linestyle=":", linewidth=1.5,
                         label=f"{baseline_label} val")
        axes.set_title(title)
        axes.set_xlabel("epoch")
        charts.integer_ticks(axes.xaxis)
        axes.set_ylabel(key)
        axes.grid(alpha=0.3)
    # One legend for both panels: the same lines in the same colours.
    handles, labels = figure.axes[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside right center", fontsize="small")
    figure.suptitle("Learning curves: train solid, validation dashed")
    return charts.png(figure, bbox_inches="tight"), None

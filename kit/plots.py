"""Pictures of what a model does: attention weights as heatmaps, training curves.

matplotlib with its non-interactive Agg backend (no display needed), imported when a
picture is drawn, so `import kit` stays light. Files are written atomically.
"""

import io

import numpy as np

from kit.files import atomic_write

ATTENTION_CAPTIONS = {
    "cross": "encoder-decoder attention: each output token (row) over the source (columns)",
    "decoder": "masked self-attention of the decoder: each output token over the earlier ones",
    "encoder": "self-attention of the encoder: each source token over the whole source",
}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(figure, path, dpi):
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    atomic_write(path, buffer.getvalue())


def _label(token):
    """A token as a tick label: spaces made visible, control characters escaped."""
    if token == " ":
        return "␣"
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in token)


def attention_figure(weights, row_labels, column_labels, title, path, kind="cross",
                     dpi=110):
    """Draws one layer's attention as heatmaps: one panel per head plus their mean.

    Args:
        weights: (H, rows, columns) attention weights, each row summing to one.
        row_labels: the tokens down the side (what attends).
        column_labels: the tokens along the top (what is attended to).
        title: the figure's title (run, layer, decoded output).
        path: where to write the PNG.
        kind: "cross", "decoder" or "encoder", for the caption.

    Returns:
        The (H + 1, rows, columns) float array drawn (the heads, then their mean).
    """
    plt = _pyplot()
    weights = np.asarray(weights, np.float32)
    if weights.ndim != 3 or weights.shape[1:] != (len(row_labels), len(column_labels)):
        raise ValueError(f"weights of shape (H, {len(row_labels)}, {len(column_labels)}) "
                         f"expected for the labels given. Received: {weights.shape}")
    panels = np.concatenate([weights, weights.mean(axis=0, keepdims=True)])
    names = [f"head {h + 1}" for h in range(len(weights))] + ["mean of heads"]
    columns = min(len(panels), 3)
    rows = -(-len(panels) // columns)
    cell = 0.28
    width = max(3.2, cell * len(column_labels) + 1.2)
    height = max(2.6, cell * len(row_labels) + 1.0)
    figure, axes = plt.subplots(rows, columns, figsize=(width * columns, height * rows),
                                squeeze=False, constrained_layout=True)
    image = None
    for axis, panel, name in zip(axes.flat, panels, names):
        image = axis.imshow(panel, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto",
                            interpolation="nearest")
        axis.set_title(name, fontsize=9)
        axis.set_xticks(range(len(column_labels)), [_label(t) for t in column_labels],
                        fontsize=7, rotation=90 if max(map(len, column_labels), default=1) > 2
                        else 0)
        axis.set_yticks(range(len(row_labels)), [_label(t) for t in row_labels], fontsize=7)
        axis.tick_params(length=0)
    for axis in list(axes.flat)[len(panels):]:
        axis.set_visible(False)
    figure.colorbar(image, ax=axes, shrink=0.8, label="attention weight")
    figure.suptitle(f"{title}\n{ATTENTION_CAPTIONS.get(kind, kind)}", fontsize=10)
    _save(figure, path, dpi)
    plt.close(figure)
    return panels


def training_curves_figure(history, title, path, dpi=110):
    """Loss and token accuracy per epoch, training and validation, side by side.

    Args:
        history: run.json's "history": a list of {"epoch", "loss", "val_loss",
            "token_accuracy", "val_token_accuracy", ...} dicts.
    """
    plt = _pyplot()
    if not history:
        raise ValueError("no epochs to draw")
    epochs = [entry["epoch"] for entry in history]
    figure, axes = plt.subplots(1, 2, figsize=(9, 3.4), constrained_layout=True)
    for axis, metric, label in ((axes[0], "loss", "loss (label-smoothed)"),
                                (axes[1], "token_accuracy", "token accuracy")):
        for prefix, style in (("", "o-"), ("val_", "s--")):
            values = [entry.get(prefix + metric) for entry in history]
            if all(v is not None for v in values):
                axis.plot(epochs, values, style, label="validation" if prefix else "training")
        axis.set_xlabel("epoch")
        axis.set_title(label, fontsize=10)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.suptitle(title, fontsize=10)
    _save(figure, path, dpi)
    plt.close(figure)

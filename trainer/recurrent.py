"""Recurrent layers: when one is built unrolled, and when it can run on cuDNN.

**Unrolled on a CPU.** A recurrent layer runs its cell in a `tf.while_loop` (on a GPU,
cuDNN's kernel). On a CPU the loop's own cost per step is large against a small cell:
conv_lstm's LSTM sees 9 pooled steps of 64 channels, and unrolling it took conv_lstm
from 5.0-9.9k to a steady 10.2-11.5k examples/s against a plain fit's 5.0-8.5k, with or
without XLA (three alternations, docs/benchmarks-history.md run 7). Long sequences stay
rolled: 40 steps x 4 loops of stacked_bilstm, unrolled, took two minutes to
XLA-compile and ran slower. Masked layers stay rolled too: Keras's unrolled loop
treats the masked steps of a returned sequence otherwise (stacked_bilstm's outputs
moved by 5e-4), and the models that mask (bilstm, stacked_bilstm, bigru) run over the
full tweet length anyway. Never on a GPU, where `unroll=True` rules out cuDNN. So
`models.build_model(unroll_short_recurrences=True)` (a run on a CPU) builds conv_lstm's
LSTM with `unroll=True`, the same parameters and maths without the loop; model.keras and
the export carry it.

**cuDNN.** Keras 3 runs an LSTM/GRU on cuDNN only under the argument conditions
`cudnn_report` checks; the trainer leaves XLA off for models that can use it.
"""

import keras

# Unmasked recurrent layers over at most this many time steps are unrolled on a CPU.
MAX_UNROLLED_STEPS = 16


def unrolled_layers(model):
    """Names of the model's layers built with `unroll=True` (directly or inside a
    Bidirectional), for the run's record."""
    names = []
    for layer in model.layers:
        config = layer.get_config()
        inner = config.get("layer", {}).get("config", {}) if isinstance(layer, keras.layers.Bidirectional) else config
        if isinstance(layer, (keras.layers.RNN, keras.layers.Bidirectional)) and inner.get("unroll"):
            names.append(layer.name)
    return names


def cudnn_eligible(model):
    """Whether `model` has LSTM/GRU layers and every one of them can run on cuDNN."""
    report = cudnn_report(model)
    return bool(report) and not any(report.values())


def _cudnn_blockers(config, *, is_gru):
    """Why one LSTM/GRU config cannot run on cuDNN; empty when it can.

    These are the argument conditions Keras 3 checks (tensorflow backend,
    `cudnn_ok` and the layers' `inner_loop`). The data condition, strictly
    right-padded masks with no fully masked row, is the data contract's job.
    """
    checks = [
        (config.get("activation") == "tanh", "activation is not tanh"),
        (config.get("recurrent_activation") == "sigmoid", "recurrent_activation is not sigmoid"),
        (not config.get("recurrent_dropout"), "recurrent_dropout > 0"),
        (not config.get("unroll"), "unroll=True"),
        (config.get("use_bias", True), "use_bias=False"),
        (config.get("use_cudnn", "auto") in ("auto", True), "use_cudnn=False"),
    ]
    if is_gru:
        checks.append((config.get("reset_after", True), "reset_after=False"))
    return tuple(reason for ok, reason in checks if not ok)


def _recurrent_layers(layers, prefix=""):
    """(path, layer) of every LSTM/GRU, looking inside Bidirectional and nested models."""
    for layer in layers:
        path = prefix + layer.name
        if isinstance(layer, keras.layers.Bidirectional):
            yield from _recurrent_layers([layer.forward_layer, layer.backward_layer], path + "/")
        elif isinstance(layer, (keras.layers.LSTM, keras.layers.GRU)):
            yield path, layer
        elif hasattr(layer, "layers"):
            yield from _recurrent_layers(layer.layers, path + "/")


def cudnn_report(model):
    """Maps each LSTM/GRU of `model` (by layer path) to why it cannot use cuDNN.

    An empty tuple means the layer meets cuDNN's conditions. Useful before a GPU run:
    a non-cuDNN LSTM is several times slower and Keras does not say so.
    """
    return {
        path: _cudnn_blockers(layer.get_config(), is_gru=isinstance(layer, keras.layers.GRU))
        for path, layer in _recurrent_layers(model.layers)
    }

"""Short recurrent layers unrolled on a CPU: the same weights and maths, no loop.

A recurrent layer runs its cell in a `tf.while_loop` (on a GPU, cuDNN's kernel). On a
CPU the loop's own cost per step is large against a small cell: conv_lstm's LSTM sees 9
pooled steps of 64 channels, and unrolling it took conv_lstm from 5.0–9.9k to a steady
10.2–11.5k examples/s against a plain fit's 5.0–8.5k, with or without XLA (three
alternations, docs/benchmarks-history.md run 7). Long sequences are left rolled: 40 steps x 4
loops of stacked_bilstm, unrolled, took two minutes to XLA-compile and ran slower.
Never on a GPU, where `unroll=True` rules out cuDNN.

`unrolled` rebuilds the model with `unroll=True` on the chosen layers and copies every
weight across: its parameters and outputs are those of the rolled model (tested), and
model.keras and the export carry the unrolled layers. Masked layers are not chosen
(see `layers_to_unroll`).
"""

import keras

# Recurrent layers over at most this many time steps are unrolled on a CPU.
MAX_UNROLLED_STEPS = 16


def layers_to_unroll(model, device_kind):
    """Names of the model's recurrent layers (an RNN, or a Bidirectional around one)
    that run over at most `MAX_UNROLLED_STEPS` known time steps without a mask, on a
    CPU; else [].

    Masked layers stay rolled: Keras's unrolled loop treats the masked steps of a
    returned sequence otherwise (stacked_bilstm's outputs moved by 5e-4), and the models
    that mask (bilstm, stacked_bilstm, bigru) run over the full tweet length anyway.
    """
    if device_kind != "CPU":
        return []
    return [
        layer.name for layer in model.layers
        if isinstance(layer, (keras.layers.RNN, keras.layers.Bidirectional)) and _short_and_unmasked(layer)
    ]


def _short_and_unmasked(layer):
    inputs = keras.tree.flatten(layer.input)  # [sequence] or [sequence, mask]
    sequence = inputs[0]
    if len(inputs) > 1 or getattr(sequence, "_keras_mask", None) is not None:
        return False
    return sequence.shape[1] is not None and sequence.shape[1] <= MAX_UNROLLED_STEPS


def unrolled(model, names):
    """`model` rebuilt with `unroll=True` on the layers `names`, with its weights.

    Call it where the model was built (inside the strategy's scope), before compiling.
    """
    if not names:
        return model

    def clone(layer):
        if layer.name not in names:
            return layer.__class__.from_config(layer.get_config())
        config = layer.get_config()
        if isinstance(layer, keras.layers.Bidirectional):
            for key in ("layer", "backward_layer"):
                if key in config:
                    config[key]["config"]["unroll"] = True
        else:
            config["unroll"] = True
        return layer.__class__.from_config(config)

    copy = keras.models.clone_model(model, clone_function=clone)
    copy.set_weights(model.get_weights())
    return copy


def unrolled_layer_names(model):
    """Names of the model's layers built with `unroll=True` (directly or inside a
    Bidirectional), for the run's record."""
    names = []
    for layer in model.layers:
        config = layer.get_config()
        inner = config.get("layer", {}).get("config", {}) if isinstance(layer, keras.layers.Bidirectional) else config
        if isinstance(layer, (keras.layers.RNN, keras.layers.Bidirectional)) and inner.get("unroll"):
            names.append(layer.name)
    return names

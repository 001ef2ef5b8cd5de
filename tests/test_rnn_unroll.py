"""Short unmasked recurrent layers unrolled on a CPU: chosen by device, length and mask,
with the same weights and outputs."""

import keras
import numpy as np

from trainer import models
from trainer import rnn_unroll
from trainer import step_plan


def _build(architecture, max_length=40, **kwargs):
    return models.build_model(architecture, vocab_size=30, embedding_dim=4, max_length=max_length, **kwargs)


def test_only_short_unmasked_recurrent_layers_on_a_cpu_are_chosen():
    # conv_lstm's LSTM sees (40 - 5 + 1) // 4 = 9 pooled steps and no mask.
    conv_lstm = _build("conv_lstm")
    assert [name.split("_")[0] for name in rnn_unroll.layers_to_unroll(conv_lstm, "CPU")] == ["lstm"]
    assert rnn_unroll.layers_to_unroll(conv_lstm, "GPU") == []  # unroll=True would rule out cuDNN
    # The masked models stay rolled, however short the tweets.
    for architecture in ("bilstm", "stacked_bilstm", "bigru"):
        assert rnn_unroll.layers_to_unroll(_build(architecture, max_length=8), "CPU") == []
    # Length: 16 steps unrolled, 17 not.
    for steps, expected in ((rnn_unroll.MAX_UNROLLED_STEPS, 1), (rnn_unroll.MAX_UNROLLED_STEPS + 1, 0)):
        model = keras.Sequential([keras.Input((steps, 3)), keras.layers.GRU(2), keras.layers.Dense(1)])
        assert len(rnn_unroll.layers_to_unroll(model, "CPU")) == expected
    # Nothing recurrent, nothing chosen.
    assert rnn_unroll.layers_to_unroll(_build("conv1d"), "CPU") == []


def test_the_unrolled_model_has_the_same_weights_and_outputs(tmp_path):
    rng = np.random.default_rng(0)
    model = _build(
        "conv_lstm", embedding_matrix=rng.normal(size=(30, 4)).astype("float32"),
        trainable_ids=np.array([1, 7]), wide="bigrams", wide_buckets=64,
    )
    names = rnn_unroll.layers_to_unroll(model, "CPU")
    unrolled = rnn_unroll.unrolled(model, names)
    assert rnn_unroll.unrolled_layer_names(model) == []
    assert rnn_unroll.unrolled_layer_names(unrolled) == names
    assert unrolled.count_params() == model.count_params() == 34_561 + 30 + 64  # the seed's conv_lstm, wide: 30 words + 64 pairs
    assert [layer.trainable for layer in unrolled.layers] == [layer.trainable for layer in model.layers]
    for ours, theirs in zip(unrolled.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(ours, theirs)
    token_ids = rng.integers(0, 30, size=(16, 40))
    np.testing.assert_allclose(unrolled.predict(token_ids, verbose=0), model.predict(token_ids, verbose=0), atol=1e-6)
    # The saved model keeps the choice and the outputs.
    unrolled.save(tmp_path / "model.keras")
    reloaded = keras.models.load_model(tmp_path / "model.keras")
    assert rnn_unroll.unrolled_layer_names(reloaded) == names
    np.testing.assert_allclose(reloaded.predict(token_ids, verbose=0), model.predict(token_ids, verbose=0), atol=1e-6)
    assert rnn_unroll.unrolled(model, []) is model


def test_the_step_plan_names_the_unrolled_layers():
    plan = step_plan.StepPlan(32, True, "XLA on one CPU", unrolled_layers=("lstm",))
    assert plan.describe() == "32 step(s) per execution, XLA on (XLA on one CPU); unrolled: lstm"
    assert step_plan.StepPlan(32, True, "XLA on one CPU").describe().endswith("(XLA on one CPU)")

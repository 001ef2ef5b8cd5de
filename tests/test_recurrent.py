"""Short unmasked recurrent layers built unrolled on a CPU (trainer/recurrent.py): chosen
by length and mask, with the same parameters and outputs as the rolled model."""

import keras
import numpy as np

from trainer import models
from trainer import recurrent
from trainer import step_plan


def _build(architecture, max_length=40, **kwargs):
    return models.build_model(architecture, vocab_size=30, embedding_dim=4, max_length=max_length, **kwargs)


def test_only_the_short_unmasked_lstm_of_conv_lstm_is_unrolled():
    # conv_lstm's LSTM sees (40 - 5 + 1) // 4 = 9 pooled steps and no mask.
    unrolled = _build("conv_lstm", unroll_short_recurrences=True)
    assert [name.split("_")[0] for name in recurrent.unrolled_layers(unrolled)] == ["lstm"]
    assert recurrent.unrolled_layers(_build("conv_lstm")) == []  # off by default (a GPU keeps cuDNN)
    # The masked models stay rolled, however short the tweets.
    for architecture in ("bilstm", "stacked_bilstm", "bigru", "conv1d"):
        assert recurrent.unrolled_layers(_build(architecture, max_length=8, unroll_short_recurrences=True)) == []
    # Length: 16 pooled steps unrolled, 17 not ((max_length - 4) // 4 steps).
    steps = recurrent.MAX_UNROLLED_STEPS
    for max_length, expected in ((4 * steps + 4, 1), (4 * (steps + 1) + 4, 0)):
        model = _build("conv_lstm", max_length=max_length, unroll_short_recurrences=True)
        assert len(recurrent.unrolled_layers(model)) == expected


def test_the_unrolled_model_has_the_same_parameters_and_outputs(tmp_path):
    rng = np.random.default_rng(0)
    options = dict(embedding_matrix=rng.normal(size=(30, 4)).astype("float32"), trainable_ids=np.array([1, 7]),
                   wide="bigrams", wide_buckets=64)
    rolled = _build("conv_lstm", **options)
    unrolled = _build("conv_lstm", unroll_short_recurrences=True, **options)
    assert unrolled.count_params() == rolled.count_params() == 34_561 + 30 + 64  # the seed's conv_lstm, wide: 30 words + 64 pairs
    assert [layer.trainable for layer in unrolled.layers] == [layer.trainable for layer in rolled.layers]
    unrolled.set_weights(rolled.get_weights())
    token_ids = rng.integers(0, 30, size=(16, 40))
    np.testing.assert_allclose(unrolled.predict(token_ids, verbose=0), rolled.predict(token_ids, verbose=0), atol=1e-6)
    # The saved model keeps the choice and the outputs.
    unrolled.save(tmp_path / "model.keras")
    reloaded = keras.models.load_model(tmp_path / "model.keras")
    assert recurrent.unrolled_layers(reloaded) == recurrent.unrolled_layers(unrolled) != []
    np.testing.assert_allclose(reloaded.predict(token_ids, verbose=0), rolled.predict(token_ids, verbose=0), atol=1e-6)


def test_the_step_plan_names_the_unrolled_layers():
    plan = step_plan.StepPlan(32, True, "XLA on one CPU", unrolled_layers=("lstm",))
    assert plan.describe() == "32 step(s) per execution, XLA on (XLA on one CPU); unrolled: lstm"
    assert step_plan.StepPlan(32, True, "XLA on one CPU").describe().endswith("(XLA on one CPU)")

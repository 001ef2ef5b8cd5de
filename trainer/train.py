"""One training run: data contract -> strategy -> model -> fit -> saved, exported,
evaluated and reported model.

Outputs (the chief's; other workers of a multi-worker run write nothing there):

  <job_dir>/model.keras         the trained Keras model (best val_loss epoch)
  <job_dir>/metrics.json        evaluation, sizes, speed and settings of the run
  <job_dir>/history.json        per-epoch logs, across resumes
  <job_dir>/report.md, learning_curves.png
  <model_dir>/                  serving SavedModel: raw tweets in, probability out
  <checkpoint_dir>/             backup for resuming, best.keras
  <log_dir>/                    TensorBoard

model_dir, checkpoint_dir and log_dir default to job_dir/{model,checkpoints,logs} and
follow Vertex AI's AIP_* variables when set (`config.resolve_dirs`).
"""

import dataclasses
import math
import os
import posixpath
import time

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from trainer import callbacks as callbacks_lib
from trainer import config as config_lib
from trainer import data
from trainer import evaluate as evaluate_lib
from trainer import export as export_lib
from trainer import files
from trainer import models
from trainer import report as report_lib
from trainer import strategy as strategy_lib

METRICS_FILE = "metrics.json"
MODEL_FILE = "model.keras"
_EVAL_BATCH_SIZE = 1024


def train(cfg, *, environ=None):
    """Trains, saves, exports, evaluates and reports one model.

    Args:
      cfg: a `config.TrainConfig`.
      environ: a mapping like `os.environ` (TF_CONFIG, AIP_*); defaults to os.environ.

    Returns:
      The content of metrics.json (on a non-chief worker, a smaller summary; nothing is
      written).

    Raises:
      schema.ContractError: the data directory does not hold what the contract promises.
      strategy.StrategyError: the requested distribution cannot be set up.
      ValueError: inconsistent settings (e.g. an architecture too large for max_length).
    """
    started = time.perf_counter()
    environ = os.environ if environ is None else environ

    # Files only, no TensorFlow runtime yet: logical CPUs and MultiWorkerMirroredStrategy
    # must be set up before the first op, dataset or model.
    contract = data.load_contract(cfg.data_dir)
    tf_config = strategy_lib.parse_tf_config(environ)
    plan = strategy_lib.plan_from_environment(cpu_replicas=cfg.cpu_replicas, environ=environ)
    policy = strategy_lib.mixed_precision_policy(
        cfg.mixed_precision,
        gpu_compute_capabilities=strategy_lib.local_gpu_compute_capabilities(),
    )
    distribution = strategy_lib.make_strategy(plan)
    chief = strategy_lib.is_chief(tf_config)
    dirs = config_lib.resolve_dirs(cfg.job_dir, environ)
    keras.utils.set_random_seed(cfg.seed)

    replicas = distribution.num_replicas_in_sync
    global_batch = cfg.batch_size * replicas
    hparams = cfg.resolved_hparams()
    logging.info(
        "Training %s %s on %s: %d replica(s) x %d = global batch %d; dtype policy %s; "
        "%s task %s.",
        cfg.architecture,
        hparams,
        cfg.data_dir,
        replicas,
        cfg.batch_size,
        global_batch,
        policy,
        "chief" if chief else "non-chief",
        strategy_lib.task_id(tf_config),
    )

    feeds = _feeds(cfg, contract, global_batch, multi_worker=plan.kind == strategy_lib.MULTI_WORKER)
    run_callbacks = callbacks_lib.make_callbacks(
        job_dir=dirs.job_dir,
        checkpoint_dir=dirs.checkpoint_dir,
        log_dir=dirs.log_dir,
        chief=chief,
        early_stopping_patience=cfg.early_stopping_patience,
        examples_per_epoch=feeds.examples_per_epoch,
    )
    previous_policy = keras.mixed_precision.global_policy()
    try:
        keras.mixed_precision.set_global_policy(policy)
        with distribution.scope():
            model = _build_and_compile(cfg, contract, hparams)
        fit_started = time.perf_counter()
        model.fit(
            feeds.train,
            validation_data=feeds.val,
            epochs=cfg.epochs,
            steps_per_epoch=feeds.steps_per_epoch,
            validation_steps=feeds.validation_steps,
            callbacks=run_callbacks.callbacks,
            shuffle=False,  # the dataset shuffles examples itself (data.make_dataset)
            verbose=0,
        )
        fit_seconds = time.perf_counter() - fit_started
        if tf.io.gfile.exists(run_callbacks.best_model_path):
            # The best val_loss epoch, also when it was reached before a kill and resume
            # (EarlyStopping can only restore weights it saw in this process).
            model.load_weights(run_callbacks.best_model_path)
        # Every worker saves (Keras's multi-worker guide); only the chief's copy is kept.
        model_path = posixpath.join(
            dirs.job_dir if chief else run_callbacks.scratch_dir, MODEL_FILE
        )
        tf.io.gfile.makedirs(posixpath.dirname(model_path))
        model.save(model_path)
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)
        run_callbacks.cleanup()  # a non-chief's scratch directory; nothing for the chief

    parameters = report_lib.parameter_counts(model)
    throughput = run_callbacks.epoch_logger.examples_per_second()
    if not chief:
        logging.info("Non-chief task %s finished; the chief writes the outputs.", strategy_lib.task_id(tf_config))
        return {"chief": False, "fit_seconds": fit_seconds, "train_examples_per_second": throughput}

    # The model reloaded outside the strategy: export and evaluation then run on this
    # process alone, with no collective op waiting for other workers.
    serving_model = keras.models.load_model(model_path)
    export_lib.export_serving_model(
        serving_model,
        vocab_tokens=contract.vocab_tokens,
        max_length=contract.max_length,
        export_dir=dirs.model_dir,
    )
    eval_split, eval_note = _evaluation_split(cfg.data_dir, contract)
    evaluation = evaluate_lib.evaluate_model(
        serving_model,
        data.make_dataset(
            cfg.data_dir, eval_split, batch_size=_EVAL_BATCH_SIZE, max_length=contract.max_length
        ),
    )
    history_path = posixpath.join(dirs.job_dir, callbacks_lib.HISTORY_FILE)
    history = callbacks_lib.read_history(history_path)
    epochs = history.get(callbacks_lib.EPOCH, [])
    val_losses = history.get("val_loss", [])
    best_epoch = epochs[int(np.argmin(val_losses))] if val_losses else None

    outputs = {
        "model_keras": model_path,
        "model_dir": dirs.model_dir,
        "metrics": posixpath.join(dirs.job_dir, METRICS_FILE),
        "history": history_path,
        "checkpoint_dir": dirs.checkpoint_dir,
        "log_dir": dirs.log_dir,
    }
    metrics = {
        **_jsonable(evaluation),
        "evaluated_on": eval_split,
        **({"evaluation_note": eval_note} if eval_note else {}),
        "architecture": cfg.architecture,
        "hparams": hparams,
        "parameters": parameters,
        "replicas": replicas,
        "per_replica_batch_size": cfg.batch_size,
        "global_batch_size": global_batch,
        "strategy": plan.kind,
        "strategy_devices": list(plan.devices),
        "num_workers": plan.num_workers,
        "dtype_policy": policy,
        "learning_rate": cfg.learning_rate,
        "epochs_requested": cfg.epochs,
        "epochs_run": len(epochs),
        "epochs_run_this_process": len(run_callbacks.epoch_logger.train_seconds),
        "best_epoch": None if best_epoch is None else best_epoch + 1,  # 1-based, as logged
        "best_val_loss": float(min(val_losses)) if val_losses else None,
        "train_examples": contract.count("train"),
        "train_examples_per_second": throughput,
        "fit_seconds": fit_seconds,
        "seed": cfg.seed,
        "data_dir": cfg.data_dir,
        "outputs": outputs,
    }
    metrics["wall_time_seconds"] = time.perf_counter() - started  # up to the report
    settings = {
        **dataclasses.asdict(cfg),
        "hparams": hparams,
        "parameters": parameters,
        "replicas": replicas,
        "global_batch_size": global_batch,
        "strategy": plan.describe(),
        "dtype_policy": policy,
        "epochs_run": len(epochs),
        "best_epoch": metrics["best_epoch"],
        "evaluated_on": eval_split,
        **({"evaluation_note": eval_note} if eval_note else {}),
        "export_dir": dirs.model_dir,
        "checkpoint_dir": dirs.checkpoint_dir,
        "log_dir": dirs.log_dir,
        "wall_time_seconds": metrics["wall_time_seconds"],
        "examples_per_second": throughput,
    }
    report_paths = report_lib.write_report(
        dirs.job_dir,
        history=history,
        # The report calls these test metrics; validation metrics are not that.
        metrics=evaluation if eval_split == "test" else None,
        metadata=contract.metadata,
        settings=settings,
    )
    outputs.update({key: path for key, path in report_paths.items() if path})
    metrics["wall_time_seconds"] = time.perf_counter() - started
    files.write_json(outputs["metrics"], metrics)
    auc = metrics.get("roc_auc")
    logging.info(
        "%s accuracy %.4f, f1 %.4f, ROC AUC %s over %d examples; %d epoch(s); %.0f s.",
        eval_split,
        metrics["accuracy"],
        metrics["f1"],
        "n/a" if auc is None else f"{auc:.4f}",
        metrics["count"],
        len(epochs),
        metrics["wall_time_seconds"],
    )
    return metrics


@dataclasses.dataclass(frozen=True)
class _Feeds:
    train: tf.data.Dataset
    val: tf.data.Dataset
    steps_per_epoch: int  # None: one pass over the split
    validation_steps: int
    examples_per_epoch: int


def _feeds(cfg, contract, global_batch, *, multi_worker):
    """Training and validation input, batched by the *global* batch size.

    Across workers every worker must run the same number of steps (each step is an
    all-reduce), so multi-worker input repeats with full batches and fixed step counts;
    one machine simply makes one pass per epoch, the last batch partial.
    """
    train_count, val_count = contract.count("train"), contract.count("val")
    common = dict(batch_size=global_batch, max_length=contract.max_length)
    if not multi_worker:
        return _Feeds(
            train=data.make_dataset(cfg.data_dir, "train", shuffle=True, seed=cfg.seed, **common),
            val=data.make_dataset(cfg.data_dir, "val", **common),
            steps_per_epoch=None,
            validation_steps=None,
            examples_per_epoch=train_count,
        )
    steps = train_count // global_batch
    if steps < 1:
        raise ValueError(
            f"Expected at least one global batch ({global_batch} examples) of training data "
            f"for multi-worker training. Received: {train_count} examples. Lower --batch_size."
        )
    repeated = dict(repeat=True, drop_remainder=True, **common)
    return _Feeds(
        train=data.make_dataset(cfg.data_dir, "train", shuffle=True, seed=cfg.seed, **repeated),
        val=data.make_dataset(cfg.data_dir, "val", **repeated),
        steps_per_epoch=steps,
        validation_steps=max(1, math.ceil(val_count / global_batch)),
        examples_per_epoch=steps * global_batch,
    )


def _build_and_compile(cfg, contract, hparams):
    """Called inside `strategy.scope()`: variables and optimizer slots are mirrored."""
    model = models.build_model(
        cfg.architecture,
        vocab_size=contract.vocab_size,
        embedding_dim=contract.embedding_dim,
        max_length=contract.max_length,
        embedding_matrix=contract.embeddings,  # frozen GloVe
        **hparams,
    )
    return compile_model(model, cfg.learning_rate)


def compile_model(model, learning_rate):
    """The one compile step of every run and tuning trial: Adam, binary cross-entropy,
    accuracy. Call it inside the strategy's scope (optimizer slots are mirrored)."""
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss="binary_crossentropy",
        metrics=["accuracy"],
    )
    return model


def _evaluation_split(data_dir, contract):
    """("test", None), or ("val", why) when the data directory has no test examples."""
    if contract.count("test") > 0 and data.split_files(data_dir, "test"):
        return "test", None
    note = (
        "The test split is empty (no --test_csv in preprocessing); these metrics are on the "
        "validation split, which also chose the best epoch, so they are optimistic."
    )
    logging.warning("%s", note)
    return "val", note


def _jsonable(value):
    """numpy scalars and arrays -> plain Python, recursively."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    return value

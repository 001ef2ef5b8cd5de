"""One training run: data contract -> strategy -> model -> fit -> saved, exported,
evaluated and reported model.

Outputs (the chief's; other workers of a multi-worker run write nothing there):

  <job_dir>/run.json            the settings the job dir was started with (run_record)
  <job_dir>/model.keras         the trained Keras model (best val_loss epoch)
  <job_dir>/metrics.json        evaluation (+ slices of val/test), sizes, speed, settings
  <job_dir>/history.json        per-epoch logs, across resumes
  <job_dir>/report.md, learning_curves.png
  <model_dir>/                  serving SavedModel: raw tweets in, probability out
  <checkpoint_dir>/             backup for resuming, best.keras
  <log_dir>/                    TensorBoard

model_dir, checkpoint_dir and log_dir default to job_dir/{model,checkpoints,logs} and
follow Vertex AI's AIP_* variables when set (`config.resolve_dirs`).
"""

import contextlib
import dataclasses
import os
import posixpath
import time
import typing

import keras
from absl import logging

from common import dir_lock
from common import files
from common.quiet_tf import tf
from trainer import callbacks as callbacks_lib
from trainer import data as data_lib
from trainer import embedding_layers
from trainer import evaluate as evaluate_lib
from trainer import export as export_lib
from trainer import report as report_lib
from trainer import run as run_lib
from trainer import run_record
from trainer import step_loop
from trainer import step_plan
from trainer import strategy as strategy_lib
from trainer import summary as summary_lib

METRICS_FILE = run_record.METRICS_FILE
MODEL_FILE = "model.keras"
_EVAL_BATCH_SIZE = 1024


def train(cfg, *, environ=None, verbose=0):
    """Trains, saves, exports, evaluates and reports one model.

    Args:
      cfg: a `config.TrainConfig`.
      environ: a mapping like `os.environ` (TF_CONFIG, AIP_*); defaults to os.environ.
      verbose: Keras's fit verbosity (`run.progress_verbosity`); 0: one log line per epoch.

    Returns:
      The content of metrics.json (on a non-chief worker, a smaller summary; nothing is
      written).

    Raises:
      schema.ContractError: the data directory does not hold what the contract promises.
      strategy.StrategyError: the requested distribution cannot be set up.
      run_record.RunMismatchError: the job dir holds a run started with other settings
        (and `cfg.overwrite` is false).
      dir_lock.DirectoryError: another run writes the job dir, or it cannot be written.
      files.SymlinkRefused, files.DamagedFile: the job dir's own files are not the run's.
      ValueError: inconsistent settings (e.g. an architecture too large for max_length).
    """
    started = time.perf_counter()
    environ = os.environ if environ is None else environ
    if not cfg.overwrite:
        done = _finished_before(cfg)
        if done is not None:
            return done
    # Only the chief writes the job dir (the other workers of a cluster write nothing there).
    chief = strategy_lib.is_chief(strategy_lib.parse_tf_config(environ))
    with dir_lock.holding(cfg.job_dir, command="s140-train") if chief else contextlib.nullcontext():
        return _train(cfg, environ, verbose, started)


def _train(cfg, environ, verbose, started):
    run = run_lib.set_up(cfg, environ=environ, job_dir=cfg.job_dir, hparams=cfg.resolved_hparams())
    if run.chief:  # before the first epoch: a mismatching job dir is refused untouched
        record = run_record.record_of(cfg, run.contract.metadata, run.hparams)
        run_record.claim(run.dirs, record, overwrite=cfg.overwrite)
    logging.info("Training %s %s for up to %d epoch(s).", cfg.architecture, run.hparams, cfg.epochs)
    trained = fit(cfg, run, verbose=verbose)
    if not run.chief:
        logging.info("Non-chief task %s finished; the chief writes the outputs.", run.task)
        return {
            "chief": False,
            "fit_seconds": trained.fit_seconds,
            "train_examples_per_second": trained.examples_per_second,
        }
    return finish(cfg, run, trained, started=started)


def _finished_before(cfg):
    """metrics.json of the finished run of exactly `cfg` in its job dir, or None.

    Every task of a multi-worker run reads the same job dir, so all of them skip
    together and none waits in a collective for the others."""
    if not tf.io.gfile.exists(posixpath.join(cfg.job_dir, METRICS_FILE)):
        return None  # the common case, without reading the data's metadata
    metadata = data_lib.read_metadata(cfg.data_dir)
    metrics = run_record.finished(cfg.job_dir, run_record.record_of(cfg, metadata, cfg.resolved_hparams()))
    if metrics is None:
        return None
    logging.info(
        "%s already holds this run, finished after %d epoch(s); nothing to train. Pass a larger "
        "--epochs to train it further, or --overwrite to train it afresh.", cfg.job_dir, metrics["epochs_run"],
    )
    return metrics


@dataclasses.dataclass(frozen=True)
class Trained:
    """What the fit leaves for the finish."""

    model_path: str  # the saved model.keras (a non-chief's is in its scratch dir, deleted)
    parameters: typing.Mapping[str, int]
    embedding_rows: typing.Mapping[str, int]  # {"frozen", "trainable"} rows of the embedding
    fit_seconds: float
    examples_per_second: typing.Optional[float]
    epochs_run_this_process: int
    steps: step_plan.StepPlan  # how each step ran (steps per execution, XLA)


def fit(cfg, run, *, verbose=0):
    """Builds the model in the run's strategy, fits it with the run's callbacks and
    saves its best val_loss epoch as model.keras (every worker saves, as Keras's
    multi-worker guide says; only the chief's copy is kept)."""
    dirs = run.dirs
    run_callbacks = callbacks_lib.make_callbacks(
        job_dir=dirs.job_dir,
        checkpoint_dir=dirs.checkpoint_dir,
        log_dir=dirs.log_dir,
        chief=run.chief,
        early_stopping_patience=cfg.early_stopping_patience,
        examples_per_epoch=run.feeds.examples_per_epoch,
    )
    try:
        with run_lib.dtype_policy(run):
            with run.strategy.scope():
                model = run_lib.build_model(run.contract, cfg.architecture, run.hparams, cfg.learning_rate, run=run)
            fit_started = time.perf_counter()
            run_lib.fit(run, model, epochs=cfg.epochs, callbacks=run_callbacks.callbacks, verbose=verbose)
            fit_seconds = time.perf_counter() - fit_started
            if tf.io.gfile.exists(run_callbacks.best_model_path):
                # The best val_loss epoch, also when it was reached before a kill and
                # resume (EarlyStopping can only restore weights it saw in this process).
                _load_best(model, run_callbacks.best_model_path)
            model_path = posixpath.join(dirs.job_dir if run.chief else run_callbacks.scratch_dir, MODEL_FILE)
            tf.io.gfile.makedirs(posixpath.dirname(model_path))
            files.save_model(model, model_path)
    finally:
        run_callbacks.cleanup()  # a non-chief's scratch directory; nothing for the chief
    logger = run_callbacks.epoch_logger
    return Trained(
        model_path=model_path,
        parameters=report_lib.parameter_counts(model),
        embedding_rows=embedding_layers.embedding_rows(model),
        fit_seconds=fit_seconds,
        examples_per_second=logger.examples_per_second(),
        epochs_run_this_process=len(logger.train_seconds),
        steps=step_loop.of(model).plan,
    )


def _load_best(model, path):
    try:
        model.load_weights(path)
    except Exception as error:  # Keras raises zipfile, h5py and ValueError errors alike
        raise files.DamagedFile(
            f"Expected {path} to hold this run's best model. Received a file Keras cannot load "
            f"({type(error).__name__}: {error}). The package writes it whole, so something else "
            "changed it: pass --overwrite to train the run afresh."
        ) from error


def finish(cfg, run, trained, *, started):
    """The chief's part after the fit: export, evaluate, report; returns metrics.json."""
    dirs = run.dirs
    # The model reloaded outside the strategy: export and evaluation then run on this
    # process alone, with no collective op waiting for other workers.
    serving_model = keras.models.load_model(trained.model_path)
    export_lib.export_serving_model(
        serving_model,
        vocab_tokens=run.contract.vocab_tokens,
        max_length=run.contract.max_length,
        export_dir=dirs.model_dir,
        standardizer=run.contract.standardizer,
    )
    eval_split, eval_note = _evaluation_split(run.contract)
    # Slices of val always, and of test when the run scores it (trainer/slices.py).
    evaluated = evaluate_lib.evaluate_splits(
        serving_model, run.contract, ("val", "test") if eval_split == "test" else ("val",),
        batch_size=_EVAL_BATCH_SIZE,
    )
    evaluation = evaluated[eval_split].metrics
    slices = {split: scored.slices for split, scored in evaluated.items()}
    history_path = posixpath.join(dirs.job_dir, callbacks_lib.HISTORY_FILE)
    summary = summary_lib.RunSummary(
        cfg=cfg,
        run=run,
        parameters=trained.parameters,
        embedding_rows=trained.embedding_rows,
        evaluation=evaluation,
        evaluated_on=eval_split,
        evaluation_note=eval_note,
        history=callbacks_lib.read_history(history_path),
        epochs_run_this_process=trained.epochs_run_this_process,
        train_examples_per_second=trained.examples_per_second,
        fit_seconds=trained.fit_seconds,
        steps=trained.steps,
        slices=slices,
    )
    outputs = {
        "model_keras": trained.model_path,
        "model_dir": dirs.model_dir,
        "metrics": posixpath.join(dirs.job_dir, METRICS_FILE),
        "history": history_path,
        "checkpoint_dir": dirs.checkpoint_dir,
        "log_dir": dirs.log_dir,
    }
    report_paths = report_lib.write_report(
        dirs.job_dir,
        history=summary.history,
        # The report calls these test metrics; validation metrics are not that.
        metrics=evaluation if eval_split == "test" else None,
        metadata=run.contract.metadata,
        settings=summary.report_settings(wall_time_seconds=time.perf_counter() - started),
        slices=slices,
    )
    outputs.update({key: path for key, path in report_paths.items() if path})
    metrics = summary.metrics(wall_time_seconds=time.perf_counter() - started, outputs=outputs)
    files.write_json(outputs["metrics"], metrics)
    auc = metrics.get("roc_auc")
    logging.info(
        "%s accuracy %.4f, f1 %.4f, ROC AUC %s over %d examples; %d epoch(s); %.0f s.",
        eval_split,
        metrics["accuracy"],
        metrics["f1"],
        "n/a" if auc is None else f"{auc:.4f}",
        metrics["count"],
        summary.epochs_run,
        metrics["wall_time_seconds"],
    )
    return metrics


def _evaluation_split(contract):
    """("test", None), or ("val", why) when the data directory has no test examples."""
    if contract.count("test") > 0 and contract.split_shards("test"):
        return "test", None
    note = (
        "The test split is empty (no --test_csv in preprocessing); these metrics are on the "
        "validation split, which also chose the best epoch, so they are optimistic."
    )
    logging.warning("%s", note)
    return "val", note

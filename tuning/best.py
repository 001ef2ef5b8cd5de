"""Retraining a sweep's best configuration with `trainer.train.train` into
`<tuner_dir>/best/`, so its exported model, metrics.json and report.md are exactly
those of `s140-train`, and the s140-train command that reproduces it."""

import dataclasses
import os
import shlex

from absl import logging

from common import files
from common.quiet_tf import tf
from trainer import config as train_config
from trainer import run_record
from trainer import tensorflow_adapter
from tuning import config as config_lib
from tuning import distributed
from tuning import search_space

# Variables that describe the tuning job, not a training run: the best model is
# retrained on this machine alone and written under <tuner_dir>/best/.
_JOB_VARIABLES = (
    "TF_CONFIG",
    "CLUSTER_SPEC",
    train_config.AIP_MODEL_DIR,
    train_config.AIP_CHECKPOINT_DIR,
    train_config.AIP_TENSORBOARD_LOG_DIR,
) + distributed.KERASTUNER_VARIABLES


def best_train_config(cfg, best):
    """The `trainer.config.TrainConfig` that retrains the best trial into best/."""
    architecture, learning_rate, hparams = best.config
    return train_config.TrainConfig(
        **dataclasses.asdict(cfg.run_settings()),  # the sweep's data, batch, seed, ...
        job_dir=cfg.path(config_lib.BEST_DIR),
        architecture=architecture,
        epochs=cfg.epochs_best or cfg.max_epochs,
        learning_rate=learning_rate,
        hparams=hparams,
    )


def train_command(train_cfg):
    """The s140-train command line of `train_cfg`: every setting it trains with."""
    flags = [
        f"--data_dir={train_cfg.data_dir}",
        f"--job_dir={train_cfg.job_dir}",
        f"--architecture={train_cfg.architecture}",
        f"--epochs={train_cfg.epochs}",
        f"--learning_rate={train_cfg.learning_rate!r}",
        f"--batch_size={train_cfg.batch_size}",
        f"--early_stopping_patience={train_cfg.early_stopping_patience}",
        f"--mixed_precision={train_cfg.mixed_precision}",
        f"--cpu_replicas={train_cfg.cpu_replicas}",
        f"--seed={train_cfg.seed}",
        f"--jit_compile={train_cfg.jit_compile}",
        f"--train_oov_vectors={str(train_cfg.train_oov_vectors).lower()}",
    ]
    if train_cfg.steps_per_execution is not None:
        flags.append(f"--steps_per_execution={train_cfg.steps_per_execution}")
    if train_cfg.hparams:
        # Text values bare (pooling=max): s140-train converts each value to its type.
        flags.append("--hparams=" + ",".join(
            f"{k}={v if isinstance(v, str) else repr(v)}" for k, v in train_cfg.hparams.items()))
    return shlex.join(["s140-train", *flags])  # quoted: paths may hold spaces


def best_hyperparameters(cfg, best):
    """The content of best_hyperparameters.json for the trial `best`."""
    architecture, learning_rate, hparams = best.config
    return {
        "trial_id": best.trial_id,
        "objective": {"name": cfg.objective, "direction": cfg.objective_direction, "value": best.score},
        search_space.ARCHITECTURE: architecture,
        search_space.LEARNING_RATE: learning_rate,
        "hparams": hparams,
        "values": dict(best.values),  # as KerasTuner holds them, incl. Hyperband's tuner/*
        "best_epoch": best.best_epoch,
        "epochs_run": best.info.get("epochs_run"),
        # The settings best/ is (or would be) retrained with, every one of them.
        "s140_train_command": train_command(best_train_config(cfg, best)),
    }


def retrain_best(cfg, best, *, environ=None):
    """Retrains the best configuration with `trainer.train.train` into <tuner_dir>/best/.

    Skipped when best/metrics.json already holds this configuration (a finished sweep
    run again); a retraining that was interrupted resumes from the trainer's backup.

    Returns:
      The content of best/metrics.json.
    """
    from trainer import train as train_lib

    train_cfg = best_train_config(cfg, best)
    metrics_path = cfg.path(f"{config_lib.BEST_DIR}/{train_lib.METRICS_FILE}")
    if tf.io.gfile.exists(metrics_path):
        metrics = files.read_json(metrics_path)
        same = (
            metrics.get("architecture") == train_cfg.architecture
            and metrics.get("hparams") == train_cfg.resolved_hparams()
            and metrics.get("learning_rate") == train_cfg.learning_rate
            and metrics.get("epochs_requested") == train_cfg.epochs
            and metrics.get("seed") == train_cfg.seed
            and metrics.get("per_replica_batch_size") == train_cfg.batch_size
            and metrics.get("data_dir") == train_cfg.data_dir
        )
        if same:
            logging.info("The best configuration (trial %s) is already retrained in %s.", best.trial_id, train_cfg.job_dir)
            return metrics
    environ = os.environ if environ is None else environ
    clean = {key: value for key, value in environ.items() if key not in _JOB_VARIABLES}
    logging.info(
        "Retraining trial %s (%s) for %d epoch(s) into %s.",
        best.trial_id, best.architecture, cfg.epochs_best, train_cfg.job_dir,
    )
    tensorflow_adapter.fresh_collective_keys()
    try:
        return train_lib.train(train_cfg, environ=clean)
    except run_record.RunMismatchError as error:
        # best/ holds the retraining of an earlier best trial (a resumed sweep found a
        # better one): it is the sweep's own directory, replaced without asking.
        logging.info("Replacing the earlier retraining in %s: %s", train_cfg.job_dir, error)
        tensorflow_adapter.fresh_collective_keys()
        return train_lib.train(dataclasses.replace(train_cfg, overwrite=True), environ=clean)

"""The set-up and the fit that every training run and every tuning trial share.

`set_up` turns run settings into a `Run`: the validated data contract, the strategy plan
and its strategy, the dtype policy, whether this process is the chief, the run's
directories, the input feeds batched by the global batch, and the hyperparameters.
`fit` trains a model built in `run.strategy.scope()` on those feeds. `trainer.train`
adds the chief's finish (save, export, evaluate, report); a tuning trial
(`tuning.trials`) adds KerasTuner's bookkeeping. So a change to how a model trains is
made once, here.

Order matters in TensorFlow: logical CPU devices and MultiWorkerMirroredStrategy must
be set up before anything initialises the runtime (the first op, dataset or model), so
the contract (files only) is read first, then the strategy is made, then the feeds.
"""

import contextlib
import dataclasses
import math
import os
import typing

import keras
from absl import logging

from common import errors
from common.quiet_tf import tf
from trainer import config as config_lib
from trainer import data
from trainer import keras_adapter
from trainer import models
from trainer import recurrent
from trainer import step_loop
from trainer import step_plan
from trainer import strategy as strategy_lib


@dataclasses.dataclass(frozen=True)
class Feeds:
    """Training and validation input of a run: full batches of the global batch size,
    with loss weights (`data.make_dataset(weighted=True)`)."""

    train: tf.data.Dataset
    val: tf.data.Dataset
    train_steps: int  # batches in a training epoch
    val_steps: int  # batches in a validation
    repeats: bool  # the datasets repeat forever: fit must be told the steps
    examples_per_epoch: int

    @property
    def steps_per_epoch(self):
        """fit's `steps_per_epoch`: None for one pass over a split that does not repeat."""
        return self.train_steps if self.repeats else None

    @property
    def validation_steps(self):
        return self.val_steps if self.repeats else None


@dataclasses.dataclass(frozen=True)
class Run:
    """Everything a fit needs, decided once per process."""

    settings: config_lib.RunSettings
    contract: data.Contract
    plan: strategy_lib.StrategyPlan
    strategy: typing.Any  # a tf.distribute.Strategy made from `plan`
    dtype_policy: str  # a Keras dtype policy name, e.g. "float32", "mixed_float16"
    chief: bool  # whether this process writes the run's files
    task: str  # e.g. "chief", "worker-1"
    dirs: typing.Optional[config_lib.RunDirs]  # None: no job directory (a tuning trial)
    feeds: Feeds
    hparams: typing.Mapping[str, typing.Any]  # what the model is built with ({}: per trial)
    global_batch: int  # per-replica batch x replicas in sync
    xla_flags: str  # XLA_FLAGS of this process, with the run's CPU runtime choice

    @property
    def replicas(self):
        return self.strategy.num_replicas_in_sync

    def step_plan_for(self, model):
        """The step settings of `model` in this run (`trainer.step_plan`), with the
        recurrent layers it was built unrolled with (`trainer.recurrent`)."""
        plan = step_plan.plan_steps(
            device_kind=_device_kind(self.plan),
            replicas=self.replicas,
            cudnn_eligible=recurrent.cudnn_eligible(model),
            jit_compile=self.settings.jit_compile,
            steps_per_execution=self.settings.steps_per_execution,
            architecture=model.name,
            draws_random_numbers=bool(
                step_plan.random_layers(model, except_philox_dropout=keras_adapter.installed())
            ),
        )
        return dataclasses.replace(plan, unrolled_layers=tuple(recurrent.unrolled_layers(model)))


def _device_kind(plan):
    # A multi-worker plan lists no devices: each worker mirrors over its own GPUs, if any.
    if plan.kind == strategy_lib.MULTI_WORKER:
        return "GPU" if tf.config.list_physical_devices("GPU") else "CPU"
    return "GPU" if any("gpu" in device.lower() for device in plan.devices) else "CPU"


def set_up(settings, *, environ=None, job_dir=None, hparams=None):
    """Decides and prepares everything of a run before its model is built.

    Args:
      settings: a `config.RunSettings` (a `TrainConfig` or a `SweepConfig`).
      environ: a mapping like `os.environ` (TF_CONFIG, AIP_*); defaults to os.environ.
      job_dir: the run's directory; its sub-directories follow the AIP_* variables
        (`config.resolve_dirs`). None: the run has no directories of its own.
      hparams: the hyperparameters the model will be built with, for the record.

    Returns:
      A `Run`.

    Raises:
      schema.ContractError: the data directory does not hold what the contract promises.
      strategy.StrategyError: the requested distribution cannot be set up.
      ValueError: e.g. too little data for one global batch across workers.
    """
    environ = os.environ if environ is None else environ
    # Files only, no TensorFlow runtime yet: see the module docstring.
    contract = data.load_contract(settings.data_dir)
    if settings.train_oov_vectors:
        contract.require_uncovered_ids()  # an older data directory fails now, by name
    tf_config = strategy_lib.parse_tf_config(environ)
    plan = strategy_lib.plan_from_environment(cpu_replicas=settings.cpu_replicas, environ=environ)
    policy = strategy_lib.mixed_precision_policy(
        settings.mixed_precision,
        gpu_compute_capabilities=strategy_lib.local_gpu_compute_capabilities(),
    )
    distribution = strategy_lib.make_strategy(plan)
    keras.utils.set_random_seed(settings.seed)
    # Dropout masks drawn with Philox: the same numbers without XLA, and XLA can take
    # models with dropout on a CPU (trainer/keras_adapter.py).
    keras_adapter.install()
    # Before the first XLA compilation, which reads XLA_FLAGS once (trainer/step_plan.py).
    os.environ["XLA_FLAGS"] = step_plan.xla_flags_for(_device_kind(plan), os.environ.get("XLA_FLAGS", ""))
    global_batch = settings.batch_size * distribution.num_replicas_in_sync
    run = Run(
        settings=settings,
        contract=contract,
        plan=plan,
        strategy=distribution,
        dtype_policy=policy,
        chief=strategy_lib.is_chief(tf_config),
        task=strategy_lib.task_id(tf_config),
        dirs=config_lib.resolve_dirs(job_dir, environ) if job_dir else None,
        feeds=make_feeds(
            contract, global_batch, seed=settings.seed, multi_worker=plan.kind == strategy_lib.MULTI_WORKER
        ),
        hparams=dict(hparams or {}),
        global_batch=global_batch,
        xla_flags=os.environ["XLA_FLAGS"],
    )
    logging.info(
        "Run on %s: %s; %d replica(s) x %d = global batch %d; dtype policy %s; XLA_FLAGS %r; %s task %s.",
        settings.data_dir,
        plan.describe(),
        run.replicas,
        settings.batch_size,
        global_batch,
        policy,
        run.xla_flags,
        "chief" if run.chief else "non-chief",
        run.task,
    )
    return run


def make_feeds(contract, global_batch, *, seed, multi_worker):
    """Training and validation input, in full batches of the *global* batch size.

    Across workers every worker must run the same number of steps (each step is an
    all-reduce), so multi-worker input repeats with full batches and fixed step counts;
    one machine makes one pass per epoch, its last batch filled up and weighted so that
    it trains exactly what a partial batch would (`data.make_dataset(weighted=True)`).
    """
    train_count, val_count = contract.count("train"), contract.count("val")
    if not multi_worker:
        return Feeds(
            train=data.make_dataset(
                contract, "train", batch_size=global_batch, shuffle=True, seed=seed, weighted=True
            ),
            val=data.make_dataset(contract, "val", batch_size=global_batch, weighted=True),
            train_steps=math.ceil(train_count / global_batch),
            val_steps=math.ceil(val_count / global_batch),
            repeats=False,
            examples_per_epoch=train_count,
        )
    steps = train_count // global_batch
    if steps < 1:
        raise errors.SettingError(
            f"Expected at least one global batch ({global_batch} examples) of training data "
            f"for multi-worker training. Received: {train_count} examples. Lower --batch_size."
        )
    repeated = dict(batch_size=global_batch, repeat=True, drop_remainder=True, weighted=True)
    return Feeds(
        train=data.make_dataset(contract, "train", shuffle=True, seed=seed, **repeated),
        val=data.make_dataset(contract, "val", **repeated),
        train_steps=steps,
        val_steps=max(1, math.ceil(val_count / global_batch)),
        repeats=True,
        examples_per_epoch=steps * global_batch,
    )


@contextlib.contextmanager
def dtype_policy(run):
    """Sets the run's Keras dtype policy for the models built inside; restores the
    previous one after (a sweep's retraining or a test must not inherit it)."""
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(run.dtype_policy)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def build_model(contract, architecture, hparams, learning_rate, *, run=None, train_oov_vectors=None):
    """One compiled classifier on the contract's frozen GloVe.

    Call it inside `run.strategy.scope()` (and `dtype_policy(run)`): variables and
    optimizer slots are then mirrored and take the run's dtype policy. With `run`, the
    model trains through `trainer.step_loop` on the run's feeds, with the run's step
    settings for this model (`Run.step_plan_for`), and on a CPU short unmasked recurrent
    layers are built unrolled (`trainer.recurrent`); without, Keras's own fit and defaults.
    `train_oov_vectors` (None: the run's setting, False without a run) makes the rows
    GloVe lacks trainable.
    """
    if train_oov_vectors is None:
        train_oov_vectors = run is not None and run.settings.train_oov_vectors
    model = models.build_model(
        architecture,
        vocab_size=contract.vocab_size,
        embedding_dim=contract.embedding_dim,
        max_length=contract.max_length,
        embedding_matrix=contract.embeddings,  # frozen GloVe
        trainable_ids=contract.require_uncovered_ids() if train_oov_vectors else None,
        # Short, unmasked recurrent layers run without a loop on a CPU (same maths).
        unroll_short_recurrences=run is not None and _device_kind(run.plan) == "CPU",
        **hparams,
    )
    if run is None:
        return models.compile_model(model, learning_rate)
    steps = run.step_plan_for(model)
    logging.info("%s: %s.", architecture, steps.describe())
    models.compile_model(model, learning_rate, steps_per_execution=steps.steps_per_execution)
    step_loop.install(
        model,
        plan=steps,
        global_batch=run.global_batch,
        steps_per_epoch=run.feeds.train_steps,
        validation_steps=run.feeds.val_steps,
    )
    return model


def progress_verbosity(stream):
    """Keras's fit verbosity for output to `stream`: 1 (its per-step progress bar) in a
    terminal, 0 elsewhere (Vertex AI logs, files, tests), where `callbacks.EpochLogger`'s
    one line per epoch is the progress."""
    isatty = getattr(stream, "isatty", None)
    return 1 if isatty is not None and isatty() else 0


def fit(run, model, *, epochs, callbacks, initial_epoch=0, verbose=0):
    """Trains `model` on the run's feeds; returns the keras History. `verbose` is
    Keras's (see `progress_verbosity`)."""
    return model.fit(
        run.feeds.train,
        validation_data=run.feeds.val,
        epochs=epochs,
        initial_epoch=initial_epoch,
        steps_per_epoch=run.feeds.steps_per_epoch,
        validation_steps=run.feeds.validation_steps,
        callbacks=callbacks,
        shuffle=False,  # the dataset shuffles examples itself (data.make_dataset)
        verbose=verbose,
    )

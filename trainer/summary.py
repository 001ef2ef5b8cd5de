"""The facts of one finished run, gathered once and rendered twice: as metrics.json and
as the settings table of report.md.

Both used to be assembled separately from the same facts; a `RunSummary` holds each
fact once, so the two files cannot disagree on a number.
"""

import dataclasses
import typing

import numpy as np

from trainer import callbacks as callbacks_lib


@dataclasses.dataclass(frozen=True)
class RunSummary:
    """What a chief knows at the end of a run."""

    cfg: typing.Any  # the `config.TrainConfig`
    run: typing.Any  # the `run.Run` it was trained in
    parameters: typing.Mapping[str, int]  # `report.parameter_counts`
    embedding_rows: typing.Mapping[str, int]  # `embedding_layers.embedding_rows`
    evaluation: typing.Mapping[str, typing.Any]  # `evaluate.binary_metrics`
    evaluated_on: str  # "test", or "val" when there is no test split
    evaluation_note: typing.Optional[str]
    history: typing.Mapping[str, list]  # history.json, across resumes
    epochs_run_this_process: int
    train_examples_per_second: typing.Optional[float]
    fit_seconds: float
    steps: typing.Any  # the `step_plan.StepPlan` the model was compiled with
    # split -> `slices.slice_metrics`: val, and test when the run scores it
    slices: typing.Mapping[str, typing.Any] = dataclasses.field(default_factory=dict)

    @property
    def epochs_run(self):
        return len(self.history.get(callbacks_lib.EPOCH, []))

    @property
    def best_epoch(self):
        """1-based, as logged; None before any validation."""
        val_losses = self.history.get("val_loss", [])
        if not val_losses:
            return None
        return self.history[callbacks_lib.EPOCH][int(np.argmin(val_losses))] + 1

    @property
    def best_val_loss(self):
        val_losses = self.history.get("val_loss", [])
        return float(min(val_losses)) if val_losses else None

    def _note(self):
        return {"evaluation_note": self.evaluation_note} if self.evaluation_note else {}

    def metrics(self, *, wall_time_seconds, outputs):
        """The content of metrics.json; `outputs` maps names to the run's files."""
        run, cfg = self.run, self.cfg
        return {
            **jsonable(self.evaluation),
            "evaluated_on": self.evaluated_on,
            **self._note(),
            "architecture": cfg.architecture,
            "hparams": dict(run.hparams),
            "parameters": dict(self.parameters),
            "embedding_rows": dict(self.embedding_rows),
            "train_oov_vectors": cfg.train_oov_vectors,
            "recipe": cfg.recipe,
            "replicas": run.replicas,
            "per_replica_batch_size": cfg.batch_size,
            "global_batch_size": run.global_batch,
            "strategy": run.plan.kind,
            "strategy_devices": list(run.plan.devices),
            "num_workers": run.plan.num_workers,
            "dtype_policy": run.dtype_policy,
            "steps_per_execution": self.steps.steps_per_execution,
            "jit_compile": self.steps.jit_compile,
            "step_plan": self.steps.describe(),
            "unrolled_layers": list(self.steps.unrolled_layers),
            "xla_flags": run.xla_flags,
            "learning_rate": cfg.learning_rate,
            "epochs_requested": cfg.epochs,
            "early_stopping_patience": cfg.early_stopping_patience,
            "epochs_run": self.epochs_run,
            "epochs_run_this_process": self.epochs_run_this_process,
            "best_epoch": self.best_epoch,
            "best_val_loss": self.best_val_loss,
            "train_examples": run.contract.count("train"),
            "train_examples_per_second": self.train_examples_per_second,
            "fit_seconds": self.fit_seconds,
            "seed": cfg.seed,
            "data_dir": cfg.data_dir,
            "slices": jsonable(dict(self.slices)),
            "outputs": dict(outputs),
            "wall_time_seconds": wall_time_seconds,
        }

    def report_settings(self, *, wall_time_seconds):
        """The settings table of report.md: every setting of the run, and what it chose."""
        run = self.run
        return {
            **dataclasses.asdict(self.cfg),
            "hparams": dict(run.hparams),
            "parameters": dict(self.parameters),
            "embedding_rows": dict(self.embedding_rows),
            "replicas": run.replicas,
            "global_batch_size": run.global_batch,
            "strategy": run.plan.describe(),
            "dtype_policy": run.dtype_policy,
            "step_plan": self.steps.describe(),
            "xla_flags": run.xla_flags,
            "epochs_run": self.epochs_run,
            "best_epoch": self.best_epoch,
            "evaluated_on": self.evaluated_on,
            **self._note(),
            "export_dir": run.dirs.model_dir,
            "checkpoint_dir": run.dirs.checkpoint_dir,
            "log_dir": run.dirs.log_dir,
            "wall_time_seconds": wall_time_seconds,
            "examples_per_second": self.train_examples_per_second,
        }


def jsonable(value):
    """numpy scalars and arrays -> plain Python, recursively."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    return value

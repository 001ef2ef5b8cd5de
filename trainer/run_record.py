"""A job directory remembers what it was started with: <job_dir>/run.json.

The chief writes run.json before the first epoch. A later run in the same job
directory (a resume after a kill, or a finished run started again) compares its
settings with it and is refused, naming both values of every setting that differs,
unless it was asked to `overwrite`: then the old run's files are deleted and the run
starts afresh. Without this, a resume under another architecture would restore the
other run's backup and history and report the mixture as one model.

What is compared is what changes what is learned: the architecture and its resolved
hyperparameters, the learning rate, the batch (per replica and the replicas it is
mirrored over, which make the global batch), the seed, the dtype policy setting, whether
the rows GloVe lacks train (train_oov_vectors), the recipe, the data directory and the
identity of the data in it (sizes, versions, counts). A run.json written before some of
these existed matches them at their seed values (`_ADDED_LATER`).

What may differ is what only changes how long or how fast the same run trains:
  * epochs: raising --epochs of a killed or finished run lets it train further from its
    last epoch (the backup is kept when a fit finishes). A finished run started again
    with the same epochs is not trained again (`finished`).
  * early_stopping_patience: a stopping rule, like epochs.
  * steps_per_execution, jit_compile: how the steps are dispatched, not what they do.
run.json is rewritten at each start, so it shows the latest of these too.
"""

import posixpath

from absl import logging

from common import errors
from common import files
from common.quiet_tf import tf

RUN_FILE = "run.json"
METRICS_FILE = "metrics.json"
# Files of a run directly in its job directory (besides run.json); the model,
# checkpoint and log directories are deleted whole.
_JOB_FILES = (
    "history.json", METRICS_FILE, "model.keras", "report.md", "learning_curves.png",
)
# Settings that may differ between runs of one job directory (see the module docstring).
MAY_DIFFER = ("epochs", "early_stopping_patience", "steps_per_execution", "jit_compile")
# Of those, the stopping rules, as a finished run's metrics.json records them (by their
# run.json names); the others change only how the steps are dispatched.
_FINISHED_WITH = {"epochs": "epochs_requested", "early_stopping_patience": "early_stopping_patience"}
# Settings newer than some run.json files, with the values that reproduce what an older
# run trained (the seed's): absent from an older record, these values are no difference,
# so a job dir started before them still resumes.
_ADDED_LATER = {
    "train_oov_vectors": (False,),
    "recipe": ("none",),
    "hparams.spatial_dropout": (0.0,),
    "hparams.wide": ("none",),
    "hparams.wide_buckets": (2**18,),
    "hparams.pooling": ("mean", "last"),
}


class RunMismatchError(errors.UserError, ValueError):
    """A job directory holds a run started with other settings."""


def record_of(cfg, metadata, hparams):
    """{setting: value} of the run `cfg` on data described by `metadata` (JSON-ready)."""
    counts = metadata.get("counts", {})
    return {
        "architecture": cfg.architecture,
        "hparams": dict(sorted(hparams.items())),
        "learning_rate": cfg.learning_rate,
        "batch_size": cfg.batch_size,
        "cpu_replicas": cfg.cpu_replicas,
        "seed": cfg.seed,
        "mixed_precision": cfg.mixed_precision,
        "train_oov_vectors": cfg.train_oov_vectors,
        "recipe": cfg.recipe,
        "data_dir": cfg.data_dir,
        "data": {
            "schema_version": metadata.get("schema_version"),
            "standardizer": metadata.get("standardizer"),  # absent before there was a choice
            "standardizer_version": metadata.get("standardizer_version"),
            "vocab_size": metadata.get("vocab_size"),
            "max_length": metadata.get("max_length"),
            "embedding_dim": metadata.get("embedding", {}).get("dim"),
            "embedding_source": metadata.get("embedding", {}).get("source"),
            "counts": {split: counts.get(split) for split in ("train", "val", "test")},
        },
        **{name: getattr(cfg, name) for name in MAY_DIFFER},
    }


def differences(recorded, current):
    """[(setting, recorded value, current value)] of the settings that must match."""
    found = []
    for name in sorted(set(recorded) | set(current)):
        if name in MAY_DIFFER:
            continue
        before, now = recorded.get(name), current.get(name)
        if isinstance(before, dict) and isinstance(now, dict):
            found += [(f"{name}.{key}", old, new) for key, old, new in differences(before, now)]
        elif before != now:
            found.append((name, before, now))
    return [
        (name, before, now) for name, before, now in found
        if not (before is None and now in _ADDED_LATER.get(name, ()))
    ]


def finished(job_dir, record):
    """metrics.json of the finished run of exactly `record` (`record_of`) in `job_dir`, or
    None: metrics.json written, and run.json equal in every setting that changes what or
    how long it trains."""
    from trainer import callbacks  # here: callbacks is heavier and needs nothing from this module

    run_path, metrics_path = posixpath.join(job_dir, RUN_FILE), posixpath.join(job_dir, METRICS_FILE)
    if not (tf.io.gfile.exists(metrics_path) and tf.io.gfile.exists(run_path)):
        return None
    if differences(files.read_json(run_path), record):
        return None
    # Not run.json's epochs: run.json is rewritten when a run starts, and a run with a
    # larger --epochs that failed before its end would otherwise pass for finished.
    metrics = files.read_json(metrics_path)
    if any(metrics.get(key) != record[name] for name, key in _FINISHED_WITH.items()):
        return None
    # A later run of the same settings in that directory, killed before its end,
    # continued history.json beside the earlier run's metrics.json.
    history = callbacks.read_history(posixpath.join(job_dir, callbacks.HISTORY_FILE))
    return metrics if metrics.get("epochs_run") == len(history.get(callbacks.EPOCH, [])) else None


def claim(dirs, record, *, overwrite):
    """Checks `record` against the job directory's run.json, then writes it.

    Args:
      dirs: the run's `config.RunDirs`.
      record: `record_of` the run about to start.
      overwrite: delete an old run's files (whatever its settings) and start afresh.

    Raises:
      RunMismatchError: run.json holds other settings and `overwrite` is false.
      files.SymlinkRefused: one of the run's files or folders is a symlink.
    """
    path = posixpath.join(dirs.job_dir, RUN_FILE)
    own = [posixpath.join(dirs.job_dir, name) for name in (RUN_FILE,) + _JOB_FILES]
    files.refuse_symlinks(own + [dirs.model_dir, dirs.checkpoint_dir, dirs.log_dir])
    for own_path in own:  # what a killed run's writes left under temporary names
        files.remove_temporaries(own_path)
    if overwrite:
        delete_run(dirs)
    elif tf.io.gfile.exists(path):
        found = differences(files.read_json(path), record)
        if found:
            listed = "; ".join(f"{name}: {old!r} there, {new!r} now" for name, old, new in found)
            raise RunMismatchError(
                f"Expected the settings {dirs.job_dir} was started with (its {RUN_FILE}). "
                f"Received other ones: {listed}. Rerun with those settings to resume or "
                f"repeat that run, choose another --job_dir, or pass --overwrite to delete "
                f"the old run and start afresh."
            )
    elif tf.io.gfile.exists(posixpath.join(dirs.job_dir, "history.json")):
        # A job directory from before run.json existed: nothing to compare with.
        logging.warning(
            "%s holds a run without %s; its settings cannot be checked. Pass --overwrite "
            "if it was started with other settings.", dirs.job_dir, RUN_FILE,
        )
    files.write_json(path, record)


def delete_run(dirs):
    """Deletes the files of a run: the job directory's own files and the model,
    checkpoint (backup, best.keras) and log directories."""
    deleted = []
    for name in (RUN_FILE,) + _JOB_FILES:
        path = posixpath.join(dirs.job_dir, name)
        if tf.io.gfile.exists(path):
            tf.io.gfile.remove(path)
            deleted.append(name)
    for directory in (dirs.model_dir, dirs.checkpoint_dir, dirs.log_dir):
        if tf.io.gfile.exists(directory):
            tf.io.gfile.rmtree(directory)
            deleted.append(directory)
    if deleted:
        logging.info("--overwrite: deleted the old run's %s.", ", ".join(deleted))

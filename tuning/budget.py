"""How many trials and epochs a sweep plans, before early stopping ends any sooner."""

from tuning import keras_tuner_adapter as kt


def _hyperband_schedule(cfg):
    return kt.hyperband_schedule(max_epochs=cfg.max_epochs, factor=cfg.hyperband_factor)


def planned_trials(cfg):
    """Trials the sweep runs when every one completes (random draws may end it early)."""
    if cfg.tuner == "hyperband":
        return sum(trials for trials, _ in _hyperband_schedule(cfg))
    return cfg.max_trials


def epoch_budget(cfg):
    """Training epochs the sweep may spend (before early stopping), all trials together."""
    if cfg.tuner == "hyperband":
        per_execution = sum(trials * epochs for trials, epochs in _hyperband_schedule(cfg))
    else:
        per_execution = cfg.max_trials * cfg.max_epochs
    return per_execution * cfg.executions_per_trial

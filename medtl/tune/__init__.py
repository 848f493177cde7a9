"""Hyper-parameter search pieces of ``medtl tune`` (nested cross-validation, docs/tune.md): the Optuna study of
one outer fold, the objective, the median pruning rule and the summaries (final parameters, importance,
optimism gap). ``medtl.workflows.tune`` runs them; nothing here trains a model."""

from .objective import Objective, objective_of
from .pruning import MedianRule
from .space import decode_params, optuna_distributions
from .study import SearchStudy, require_optuna

__all__ = ["MedianRule", "Objective", "SearchStudy", "decode_params", "objective_of", "optuna_distributions",
           "require_optuna"]

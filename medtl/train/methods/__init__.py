"""Training methods: one file each, registered by name; ``train.method`` picks one (default ``erm``).

``METHODS`` maps a name to a ``TrainingMethod`` subclass; ``register_method`` adds one (a
built-in here, or a method of your own from your code: see docs/architecture.md).
``check_support`` is the one place where a method's capability flags meet the run's needs.
"""

from __future__ import annotations

from ...errors import ConfigError
from ...plumbing.registry import Registry
from .base import Batch, TrainingMethod


def _load_builtin() -> None:
    from .dann import DANN
    from .erm import ERM
    from .fedavg import FedAvg
    from .fedprox import FedProx
    from .reweight import Reweight

    for method in (ERM, DANN, Reweight, FedAvg, FedProx):
        METHODS.register(method.name, method)


METHODS: Registry[type[TrainingMethod]] = Registry("training method", loader=_load_builtin)


def register_method(method: type[TrainingMethod]) -> type[TrainingMethod]:
    """Add a ``TrainingMethod`` subclass under its ``name`` (usable as ``train.method: <name>``)."""
    METHODS._load()  # built-ins first, so a clash with one is refused
    return METHODS.register(method.name, method)


def method_class(config) -> type[TrainingMethod]:
    """The training method a config names (``train.method``, else ``adapt.method``, else ``erm``; an unknown
    name fails with the closest match)."""
    return METHODS.get(config.method_name, "train.method")


def build_method(config) -> TrainingMethod:
    """A fresh instance of the config's training method (one per fold)."""
    return method_class(config)(config)


def check_support(arm: str, config, *, ddp: bool = False, executor: str = "local") -> None:
    """Refuse an arm whose method cannot run where the run asks it to (DDP, a cluster engine, patch mode)."""
    method = method_class(config)
    needs = [(ddp and not method.supports_ddp, "training under torchrun (DDP)", "run it without torchrun"),
             (executor != "local" and not method.supports_executor, f"run.executor: {executor}",
              "use run.executor: local"),
             (not config.data.fixed_size and not method.supports_patch_mode,
              "native-extent patch mode", "use data.mode: resize, or a data.roi crop")]
    for refused, what, fix in needs:
        if refused:
            raise ConfigError(f"arm '{arm}': training method '{method.name}' does not support {what}; {fix}, or "
                              "choose another train.method")


__all__ = ["METHODS", "Batch", "TrainingMethod", "build_method", "check_support", "method_class",
           "register_method"]

"""Meta-learning methods: one file each, registered by name; ``source.task`` picks one."""

from __future__ import annotations

from ...plumbing.registry import Registry
from .base import MetaMethod


def _load_builtin() -> None:
    from .anil import ANIL
    from .fomaml import FOMAML
    from .maml import MAML
    from .protonet import ProtoNet

    for method in (MAML, FOMAML, ANIL, ProtoNet):
        META_METHODS.register(method.name, method)


META_METHODS: Registry[type[MetaMethod]] = Registry("meta-learning method", loader=_load_builtin)


def build_meta_method(name: str, model, meta) -> MetaMethod:
    """A fresh instance of the meta-learning method ``name`` for ``model``."""
    return META_METHODS.get(name, "source.task")(model, meta)


__all__ = ["META_METHODS", "MetaMethod", "build_meta_method"]

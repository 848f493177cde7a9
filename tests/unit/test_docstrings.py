"""Public functions, classes and methods carry docstrings (at least 80%; config sections all)."""

import importlib
import inspect
import pkgutil

import medtl
from medtl import config


def public_objects():
    for info in pkgutil.walk_packages(medtl.__path__, "medtl."):
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            if name.startswith("_") or getattr(obj, "__module__", None) != module.__name__:
                continue
            if inspect.isfunction(obj):
                yield f"{info.name}.{name}", obj
            elif inspect.isclass(obj):
                yield f"{info.name}.{name}", obj
                for attr, member in vars(obj).items():
                    if not attr.startswith("_") and (inspect.isfunction(member) or isinstance(member, property)):
                        yield f"{info.name}.{name}.{attr}", getattr(obj, attr)


def test_at_least_80_percent_of_public_objects_are_documented():
    objects = dict(public_objects())
    missing = sorted(name for name, obj in objects.items() if not inspect.getdoc(obj))
    assert len(objects) > 200
    assert 1 - len(missing) / len(objects) >= 0.8, missing


def test_every_config_section_is_documented():
    from medtl.config.base import Section

    sections = [config.Config, config.DataConfig, config.AugmentConfig, config.SlidingWindowConfig, config.ModelConfig,
                config.FinetuneConfig, config.TrainConfig, config.CVConfig, config.SourceConfig, config.AdaptConfig,
                config.ArmConfig]
    assert all(inspect.getdoc(s) and inspect.getdoc(s) != inspect.getdoc(Section) for s in sections)

"""Typed experiment config: YAML plus ``--set a.b=value`` overrides.

Unknown keys are errors with a did-you-mean; relative paths resolve against the
config file's folder. The schema (``data``, ``sections``, ``experiment``) is the single
declaration of every key: the CLI never re-declares them.
"""

from .data import DEFAULT_IMAGE_SIZE, AugmentConfig, DataConfig, SlidingWindowConfig
from .experiment import PRETRAINED_KEYWORDS, PUBLISHED_WEIGHTS, Config, dump_config, load_config
from .federated import FederatedConfig
from .meta import META_TASKS, MetaConfig, MetaSource
from .overrides import config_differences, flatten, parse_override, set_dotted
from .privacy import PrivacyConfig
from .sections import (
    SSL_TASKS,
    AdaptConfig,
    ArmConfig,
    CardConfig,
    CVConfig,
    ExplainConfig,
    FinetuneConfig,
    ModelConfig,
    MultitaskConfig,
    RunConfig,
    SourceConfig,
    SSLConfig,
    TaskSpec,
    TrackingConfig,
    TrainConfig,
)

__all__ = ["FederatedConfig", "PrivacyConfig", "META_TASKS", "MetaConfig", "MetaSource", "DEFAULT_IMAGE_SIZE", "PRETRAINED_KEYWORDS", "PUBLISHED_WEIGHTS", "SSL_TASKS", "SSLConfig", "AdaptConfig", "CardConfig", "ExplainConfig", "ArmConfig", "AugmentConfig", "CVConfig",
           "Config", "DataConfig", "FinetuneConfig", "ModelConfig", "MultitaskConfig", "RunConfig", "TaskSpec", "TrackingConfig", "SlidingWindowConfig", "SourceConfig",
           "TrainConfig", "config_differences", "dump_config", "flatten", "load_config", "parse_override",
           "set_dotted"]

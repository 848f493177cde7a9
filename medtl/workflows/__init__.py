"""The commands' orchestration: each module runs one command from stage packages.

``cv``, ``pretrain``, ``predict``, ``evaluate``. Stage packages (io, data, transforms,
models, tasks, train, evaluate, predict) never import from here.
"""

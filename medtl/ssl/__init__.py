"""Self-supervised source pretraining on unlabelled images: SimCLR / MICLe, BYOL, Models-Genesis restoration.

A stage package beside ``train``: it builds views and corruptions (MONAI transforms),
the objectives, the resumable loop and the linear-probe monitor; the source-stage
workflow (``workflows/pretrain_ssl.py``) wires them to the pool and the checkpoint.
"""

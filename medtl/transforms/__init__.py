"""Config -> MONAI dictionary-transform pipelines."""

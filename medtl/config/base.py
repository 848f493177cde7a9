"""The base of every config section: unknown keys are errors, assignments are validated."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """A config section (``extra="forbid"``: a misspelt key is an error, never silently ignored; NaN and infinity
    are refused in every float field, lists included: ``data.spacing: [NaN, 1, 1]`` would otherwise run)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

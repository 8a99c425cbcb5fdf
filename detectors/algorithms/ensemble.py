"""``ensemble``: several detectors, each calibrated, combined into one score.

Each member's raw score is turned into a causal tail probability against its own history (see
``postprocess.calibrate``; members that calibrate themselves, such as ``auto``, are taken as they
are). The combined score is ``-log10`` of the smallest probability with a Bonferroni correction
(``combine="max"``) or the mean of the members' ``-log10`` values (``combine="mean"``). Members are
given as registry keys or ``{"key": ..., "params": {...}}``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .base import Detector, ScoreResult
from .params import ParamsError
from .postprocess import calibrate


@dataclass
class EnsembleParams:
    members: list = field(default_factory=lambda: ["kmeans", "ewma", "holt_winters"])
    combine: str = field(default="max", metadata={"choices": ("max", "mean")})
    calibration_window: int = field(default=4000, metadata={"min": 50, "max": 100_000})


def _member_spec(spec: Any) -> tuple[str, dict[str, Any]]:
    if isinstance(spec, str):
        return spec, {}
    if isinstance(spec, dict) and isinstance(spec.get("key"), str):
        return spec["key"], dict(spec.get("params") or {})
    raise ParamsError({"members": f"each member must be a key or {{'key': ..., 'params': ...}}, got {spec!r}"})


class Ensemble(Detector):
    key = "ensemble"
    tags = {**Detector.tags, "multivariate": True, "score_unit": "neglog10p"}
    Params = EnsembleParams

    @classmethod
    def validate_params(cls, params: dict[str, Any] | None) -> dict[str, Any]:
        from django.conf import settings

        from .registry import get_algorithm

        full = super().validate_params(params)
        if not full["members"]:
            raise ParamsError({"members": "must name at least one detector"})
        if len(full["members"]) > settings.DETECTOR_MAX_ENSEMBLE_MEMBERS:
            limit = settings.DETECTOR_MAX_ENSEMBLE_MEMBERS
            raise ParamsError({"members": f"at most {limit} members (DETECTOR_MAX_ENSEMBLE_MEMBERS)"})
        for spec in full["members"]:
            key, member_params = _member_spec(spec)
            if key in ("ensemble",):
                raise ParamsError({"members": "an ensemble cannot contain an ensemble"})
            try:
                get_algorithm(key).validate_params(member_params)
            except KeyError as exc:
                raise ParamsError({"members": str(exc.args[0])}) from None
            except ParamsError as exc:
                raise ParamsError({f"members.{key}.{k}": v for k, v in exc.errors.items()}) from None
        return full

    @classmethod
    def get_test_params(cls) -> dict[str, Any]:
        return {"members": [{"key": "mad", "params": {"window": 30}}, "ewma"], "calibration_window": 300}

    @property
    def context_size(self) -> int:
        return max(m.context_size for m in self.members_) + self.p.calibration_window

    def _build(self) -> list[Detector]:
        from .registry import get_algorithm

        return [get_algorithm(key)(**params) for key, params in map(_member_spec, self.p.members)]

    def _fit(self, X: np.ndarray, timestamps: pd.DatetimeIndex | None) -> None:
        self.members_ = [m.fit(X if m.tags["multivariate"] else X[:, 0], timestamps) for m in self._build()]

    def _score(self, X: np.ndarray, timestamps: pd.DatetimeIndex | None) -> ScoreResult:
        neglogs = []
        first = None
        for m in self.members_:
            result = m.score_details(X if m.tags["multivariate"] else X[:, 0], timestamps)
            if first is None and result.expected is not None:
                first = result
            prob = calibrate(result.score, m.tags["score_unit"], self.p.calibration_window)
            neglogs.append(-np.log10(prob))
        contrib = np.column_stack(neglogs)
        if self.p.combine == "max":
            score = np.maximum(contrib.max(axis=1) - np.log10(contrib.shape[1]), 0.0)
        else:
            score = contrib.mean(axis=1)
        names = [m.key for m in self.members_]
        if first is None:
            return ScoreResult(score, contributions=contrib, feature_names=names)
        return ScoreResult(score, first.expected, first.lower, first.upper, contrib, names)

    def _get_state(self) -> dict[str, Any]:
        return {"members": [{"key": m.key, "params": m.get_params(), "state": m.get_state()} for m in self.members_]}

    def _set_state(self, state: dict[str, Any]) -> None:
        from .registry import get_algorithm

        self.members_ = [get_algorithm(s["key"]).from_state(s["params"], s["state"]) for s in state["members"]]

"""Pure-Python anomaly detection library (numpy, pandas, scikit-learn, statsmodels; never Django).

Public API: ``get_algorithm``, ``algorithm_keys``, ``detect``, ``DetectionResult``, ``Event``,
``Detector``, ``ScoreResult``, ``ParamsError``.
"""

from .base import Detector, NotFittedError, ScoreResult
from .params import ParamsError
from .postprocess import DetectionResult, Event, detect
from .registry import ALGORITHMS, algorithm_keys, get_algorithm

__all__ = [
    "ALGORITHMS",
    "DetectionResult",
    "Detector",
    "Event",
    "NotFittedError",
    "ParamsError",
    "ScoreResult",
    "algorithm_keys",
    "detect",
    "get_algorithm",
]

"""Algorithm registry: a plain dict of key -> "module:Class", imported lazily on first use."""

from __future__ import annotations

from common.registry import registered_class

from .base import Detector

ALGORITHMS: dict[str, str] = {
    "auto": "detectors.algorithms.auto:AutoDetector",
    "zscore": "detectors.algorithms.statistical:RollingZScore",
    "mad": "detectors.algorithms.statistical:RobustMAD",
    "esd": "detectors.algorithms.statistical:GeneralizedESD",
    "ewma": "detectors.algorithms.statistical:EWMAChart",
    "cusum": "detectors.algorithms.statistical:CUSUM",
    "stl": "detectors.algorithms.seasonal:STLResidual",
    "holt_winters": "detectors.algorithms.seasonal:HoltWinters",
    "sarimax": "detectors.algorithms.seasonal:SARIMAXResidual",
    "isolation_forest": "detectors.algorithms.ml:IsolationForestDetector",
    "one_class_svm": "detectors.algorithms.ml:OneClassSVMDetector",
    "lof": "detectors.algorithms.ml:LOFDetector",
    "kmeans": "detectors.algorithms.ml:KMeansDetector",
    "gmm": "detectors.algorithms.ml:GaussianMixtureDetector",
    "ensemble": "detectors.algorithms.ensemble:Ensemble",
}


def algorithm_keys() -> list[str]:
    return list(ALGORITHMS)


def get_algorithm(key: str) -> type[Detector]:
    """The detector class registered under ``key`` (KeyError for an unknown key)."""
    return registered_class(ALGORITHMS, key, "algorithm")

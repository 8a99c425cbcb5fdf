"""Machine-learning detectors (scikit-learn) on window features (series) or a row's own fields (table).

``mode="series"`` (default): input is one series or an ``(n, d)`` array; features are built from
each row and the rows before it (see ``features.series_features``), so scoring stays causal.
``mode="table"``: input is a DataFrame of records, possibly of mixed types; each row is scored on
its own fields. Features are standardized with the training median and sigma; ``contributions``
are these standardized values (per-feature z-deviations).

``refit_every`` (off by default) follows drift: each block of that many rows is scored by a model
refitted on the ``max_train`` rows before it (the fitted state still holds the training model; the
refits are recomputed from the scored data, so scoring stays causal and deterministic). On NAB it
helps k-means slightly and hurts LOF and the Gaussian mixture, which absorb recent anomalies.

Persistence never pickles. KMeans, Gaussian mixture and One-Class SVM store their fitted arrays
(centres; weights/means/covariances; support vectors, dual coefficients, intercept, gamma) and score
with plain numpy. Isolation Forest and LOF have no compact safe form: they store the (scaled)
training matrix they were fitted on -- at most ``max_train`` rows -- and their seed, and refit
deterministically on load, which reproduces the same model exactly.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from scipy.special import logsumexp

from .base import Detector, ScoreResult, as_array
from .features import TableEncoder, robust_scaling, series_features, time_features_for
from .rolling import robust_sigma, scale_floor


@dataclass
class FeatureParams:
    mode: str = field(default="series", metadata={"choices": ("series", "table")})
    window: int = field(default=20, metadata={"min": 2, "max": 10_000})
    n_lags: int = field(default=3, metadata={"min": 0, "max": 50})
    use_time: bool = True
    max_train: int = field(default=2000, metadata={"min": 10, "max": 100_000})
    refit_every: int | None = field(default=None, metadata={"min": 50, "max": 1_000_000})
    random_state: int = field(default=0, metadata={"min": 0})


class _FeatureModel(Detector):
    tags = {**Detector.tags, "multivariate": True, "table": True}
    Params: ClassVar[type] = FeatureParams

    @classmethod
    def get_test_params(cls) -> dict[str, Any]:
        return {"window": 10, "max_train": 300, "refit_every": 250}

    @property
    def context_size(self) -> int:
        return int(self.p.window + self.p.n_lags + 1)

    # -- features ---------------------------------------------------------------------------------
    def _raw_features(self, X: Any, timestamps: pd.DatetimeIndex | None) -> tuple[np.ndarray, list[str]]:
        if isinstance(X, pd.DataFrame):
            return self.encoder_.transform(X)
        return series_features(
            X,
            timestamps,
            np.asarray(self.series_center_),
            np.asarray(self.series_sigma_),
            self.p.window,
            self.p.n_lags,
            tuple(self.time_features_) if self.p.use_time else (),
        )

    def _features(self, X: Any, timestamps: pd.DatetimeIndex | None) -> tuple[np.ndarray, list[str]]:
        F, names = self._raw_features(X, timestamps)
        Z = (F - self.feat_center_) / self.feat_scale_
        return np.clip(np.nan_to_num(Z, nan=0.0), -1e6, 1e6), names

    def _fit(self, X: Any, timestamps: pd.DatetimeIndex | None) -> None:
        self.time_features_ = list(time_features_for(timestamps))
        if isinstance(X, pd.DataFrame):
            self.encoder_ = TableEncoder.fit(X)
            self.series_center_, self.series_sigma_ = [], []
        else:
            self.encoder_ = TableEncoder()
            self.series_center_ = [float(np.median(X[:, c])) for c in range(X.shape[1])]
            self.series_sigma_ = [max(robust_sigma(X[:, c]), scale_floor(X[:, c])) for c in range(X.shape[1])]
        F, _ = self._raw_features(X, timestamps)
        self.feat_center_, self.feat_scale_ = robust_scaling(F)
        Z, _ = self._features(X, timestamps)
        self._fit_model(Z[-self.p.max_train :])

    def _score(self, X: Any, timestamps: pd.DatetimeIndex | None) -> ScoreResult:
        Z, names = self._features(X, timestamps)
        scores = self._model_score(Z)
        every = self.p.refit_every
        if every and not isinstance(X, pd.DataFrame):
            # follow drift: each block of rows is scored by a model refitted on the rows before it
            for start in range(every, len(Z), every):
                model = type(self)(**self.params)
                model.feat_center_ = self.feat_center_
                model._fit_model(Z[max(0, start - self.p.max_train) : start])
                scores[start : start + every] = model._model_score(Z[start : start + every])
        return ScoreResult(scores, contributions=Z, feature_names=names)

    # -- state ------------------------------------------------------------------------------------
    def _get_state(self) -> dict[str, Any]:
        return {
            "time_features": self.time_features_,
            "encoder": self.encoder_.state(),
            "series_center": self.series_center_,
            "series_sigma": self.series_sigma_,
            "feat_center": self.feat_center_,
            "feat_scale": self.feat_scale_,
            "model": self._model_state(),
        }

    def _set_state(self, state: dict[str, Any]) -> None:
        self.time_features_ = [str(v) for v in state["time_features"]]
        self.encoder_ = TableEncoder(**state["encoder"])
        self.series_center_ = [float(v) for v in state["series_center"]]
        self.series_sigma_ = [float(v) for v in state["series_sigma"]]
        self.feat_center_ = as_array(state["feat_center"])
        self.feat_scale_ = as_array(state["feat_scale"])
        self._load_model(state["model"])

    # -- per model --------------------------------------------------------------------------------
    def _fit_model(self, Z: np.ndarray) -> None:
        raise NotImplementedError

    def _model_score(self, Z: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _model_state(self) -> dict[str, Any]:
        raise NotImplementedError

    def _load_model(self, state: dict[str, Any]) -> None:
        raise NotImplementedError


class _RefitOnLoad(_FeatureModel):
    """Keeps the training matrix; the estimator is rebuilt deterministically from it on load."""

    def _fit_model(self, Z: np.ndarray) -> None:
        self.train_ = Z
        self.model_ = self._make_model(len(Z)).fit(Z)

    def _model_state(self) -> dict[str, Any]:
        return {"train": self.train_}  # JSON floats round-trip exactly

    def _load_model(self, state: dict[str, Any]) -> None:
        self._fit_model(as_array(state["train"]).reshape(-1, len(self.feat_center_)))

    def _make_model(self, n: int) -> Any:
        raise NotImplementedError


@dataclass
class IsolationForestParams(FeatureParams):
    n_estimators: int = field(default=100, metadata={"min": 10, "max": 2000})


class IsolationForestDetector(_RefitOnLoad):
    key = "isolation_forest"
    Params = IsolationForestParams

    def _make_model(self, n: int) -> Any:
        from sklearn.ensemble import IsolationForest

        return IsolationForest(n_estimators=self.p.n_estimators, random_state=self.p.random_state)

    def _model_score(self, Z: np.ndarray) -> np.ndarray:
        return -self.model_.score_samples(Z)


@dataclass
class LOFParams(FeatureParams):
    n_neighbors: int = field(default=20, metadata={"min": 1, "max": 1000})


class LOFDetector(_RefitOnLoad):
    key = "lof"
    Params = LOFParams

    def _make_model(self, n: int) -> Any:
        from sklearn.neighbors import LocalOutlierFactor

        return LocalOutlierFactor(n_neighbors=max(1, min(self.p.n_neighbors, n - 1)), novelty=True)

    def _model_score(self, Z: np.ndarray) -> np.ndarray:
        return -self.model_.score_samples(Z)


@dataclass
class OCSVMParams(FeatureParams):
    nu: float = field(default=0.05, metadata={"min": 1e-4, "max": 1.0})
    max_train: int = field(default=1000, metadata={"min": 10, "max": 20_000})


class OneClassSVMDetector(_FeatureModel):
    """RBF One-Class SVM; the decision function is recomputed from the stored support vectors."""

    key = "one_class_svm"
    Params = OCSVMParams

    def _fit_model(self, Z: np.ndarray) -> None:
        from sklearn.svm import OneClassSVM

        var = float(Z.var()) if Z.size else 1.0
        self.gamma_ = 1.0 / (Z.shape[1] * var) if var > 0 else 1.0
        svm = OneClassSVM(nu=self.p.nu, gamma=self.gamma_).fit(Z)
        self.support_ = np.asarray(svm.support_vectors_)
        self.dual_ = np.asarray(svm.dual_coef_).ravel()
        self.intercept_ = float(np.ravel(svm.intercept_)[0])

    def _model_score(self, Z: np.ndarray) -> np.ndarray:
        out = np.empty(len(Z))
        for lo in range(0, len(Z), 2048):
            block = Z[lo : lo + 2048]
            d2 = (block**2).sum(1)[:, None] + (self.support_**2).sum(1)[None, :] - 2 * block @ self.support_.T
            out[lo : lo + 2048] = -(np.exp(-self.gamma_ * np.maximum(d2, 0.0)) @ self.dual_ + self.intercept_)
        return out

    def _model_state(self) -> dict[str, Any]:
        return {"gamma": self.gamma_, "support": self.support_, "dual": self.dual_, "intercept": self.intercept_}

    def _load_model(self, state: dict[str, Any]) -> None:
        self.gamma_ = float(state["gamma"])
        self.support_ = as_array(state["support"]).reshape(-1, len(self.feat_center_))
        self.dual_ = as_array(state["dual"])
        self.intercept_ = float(state["intercept"])


@dataclass
class KMeansParams(FeatureParams):
    n_clusters: int = field(default=8, metadata={"min": 1, "max": 500})


class KMeansDetector(_FeatureModel):
    """Distance to the nearest k-means centre."""

    key = "kmeans"
    Params = KMeansParams

    def _fit_model(self, Z: np.ndarray) -> None:
        from sklearn.cluster import KMeans

        k = max(1, min(self.p.n_clusters, len(np.unique(Z, axis=0))))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = KMeans(n_clusters=k, n_init=3, random_state=self.p.random_state).fit(Z)
        self.centers_ = np.asarray(model.cluster_centers_)

    def _model_score(self, Z: np.ndarray) -> np.ndarray:
        d2 = (Z**2).sum(1)[:, None] + (self.centers_**2).sum(1)[None, :] - 2 * Z @ self.centers_.T
        return np.sqrt(np.maximum(d2.min(axis=1), 0.0))

    def _model_state(self) -> dict[str, Any]:
        return {"centers": self.centers_}

    def _load_model(self, state: dict[str, Any]) -> None:
        self.centers_ = as_array(state["centers"]).reshape(-1, len(self.feat_center_))


@dataclass
class GMMParams(FeatureParams):
    n_components: int = field(default=3, metadata={"min": 1, "max": 100})
    reg_covar: float = field(default=1e-3, metadata={"min": 1e-9, "max": 10.0})


class GaussianMixtureDetector(_FeatureModel):
    """Negative log-likelihood under a full-covariance Gaussian mixture."""

    key = "gmm"
    Params = GMMParams

    def _fit_model(self, Z: np.ndarray) -> None:
        from sklearn.mixture import GaussianMixture

        k = max(1, min(self.p.n_components, len(Z) // 2))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = GaussianMixture(
                n_components=k, covariance_type="full", reg_covar=self.p.reg_covar, random_state=self.p.random_state
            ).fit(Z)
        self.weights_ = np.asarray(model.weights_)
        self.means_ = np.asarray(model.means_)
        self.covariances_ = np.asarray(model.covariances_)

    def _model_score(self, Z: np.ndarray) -> np.ndarray:
        d = Z.shape[1]
        logs = []
        for w, mu, cov in zip(self.weights_, self.means_, self.covariances_, strict=True):
            chol = np.linalg.cholesky(cov)
            sol = np.linalg.solve(chol, (Z - mu).T)
            maha = (sol**2).sum(axis=0)
            logdet = 2.0 * np.log(np.diag(chol)).sum()
            logs.append(np.log(w) - 0.5 * (d * np.log(2 * np.pi) + logdet + maha))
        return -logsumexp(np.vstack(logs), axis=0)

    def _model_state(self) -> dict[str, Any]:
        return {"weights": self.weights_, "means": self.means_, "covariances": self.covariances_}

    def _load_model(self, state: dict[str, Any]) -> None:
        d = len(self.feat_center_)
        self.weights_ = as_array(state["weights"])
        self.means_ = as_array(state["means"]).reshape(-1, d)
        self.covariances_ = as_array(state["covariances"]).reshape(-1, d, d)

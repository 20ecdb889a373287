"""Model files: written only by our own workers, loaded only after a hash check, with skops.

- `model_save` serialises a fitted object with skops (no pickle) and writes it through the
  storage API under a generated key, first under a temporary name and then renamed, so a
  killed worker never leaves a half-written file under the final key.
- `model_load` reads the bytes, refuses them unless their SHA-256 equals the one recorded in
  the database (a tampered file is refused *before* deserialisation), then loads with skops
  and a fixed allowlist of types. We never pass `get_untrusted_types()` back as trusted.

skops itself trusts scikit-learn's estimators and numpy/scipy containers by default; the
allowlist adds the few internal types our catalogue produces. A type outside it makes the
load fail with `UntrustedModelFile`.
"""

from __future__ import annotations

import hashlib
import io
import threading
import uuid
from dataclasses import dataclass
from typing import Any

import skops.io as sio
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

# Reviewed list: every entry is a data container or a scikit-learn internal without code on
# load. Extend it only with types our own code creates (and add them to the test that
# round-trips every catalogue estimator).
TRUSTED_TYPES: tuple[str, ...] = (
    "numpy.dtype",
    "sklearn.tree._tree.Tree",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
    "sklearn._loss.link.IdentityLink",
    "sklearn._loss.link.LogitLink",
    "sklearn._loss.link.MultinomialLogit",
    "sklearn._loss.loss.HalfSquaredError",
    "sklearn._loss.loss.HalfBinomialLoss",
    "sklearn._loss.loss.HalfMultinomialLoss",
    "sklearn.neighbors._kd_tree.KDTree",
    "sklearn.neighbors._ball_tree.BallTree",
    # Added by experiments (k-NN's fitted distance metric; the MLP's optimiser state: learning
    # rate and moment arrays). Both are scikit-learn internals restored from data only.
    "sklearn.metrics._dist_metrics.EuclideanDistance64",
    "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
    "sklearn.utils._bunch.Bunch",
    # The support vector machine's calibrated probabilities (CalibratedClassifierCV around SVC,
    # scikit-learn 1.9's replacement for SVC(probability=True)): its fitted calibrator, data only.
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
    "collections.OrderedDict",
    "builtins.slice",
    "numpy.random.mtrand.RandomState",
    "numpy.random._mt19937.MT19937",
    "scipy.sparse._csr.csr_matrix",
    "scipy.sparse._csr.csr_array",
    "datasets.transformers.DateParts",
    "datasets.transformers.Ratio",
    "datasets.transformers.UppercaseRatio",
    "datasets.transformers.AgeFromDate",
    "datasets.transformers.ColumnDropper",
    "datasets.transformers.TextColumn",
    "datasets.transformers.ToString",
    "datasets.transformers.CategoryCleaner",
    "datasets.transformers.ToFloat",
    # Score functions of the recipe's select_k_best step (plain functions of numpy arrays).
    "sklearn.feature_selection._univariate_selection.f_classif",
    "sklearn.feature_selection._univariate_selection.f_regression",
    # LightGBM (catalogue key "lightgbm", and external runs). The estimators are plain attribute
    # holders; the Booster's state is LightGBM's own text model format, which __setstate__ parses
    # with LGBM_BoosterLoadModelFromString (no code, no pickle). Nothing else of lightgbm is trusted.
    "lightgbm.sklearn.LGBMClassifier",
    "lightgbm.sklearn.LGBMRegressor",
    "lightgbm.basic.Booster",
)


class TamperedModelFile(Exception):
    """The stored bytes do not match the recorded SHA-256."""


class UntrustedModelFile(Exception):
    """The file holds a type outside the allowlist, or is not a valid skops file."""


@dataclass(frozen=True)
class StoredArtifact:
    key: str
    sha256: str
    size: int


def model_dumps(obj: Any) -> bytes:
    return sio.dumps(obj, compression=8)


def model_save(obj: Any, *, prefix: str) -> StoredArtifact:
    data = model_dumps(obj)
    return bytes_save(data, prefix=prefix, suffix=".skops")


def bytes_save(data: bytes, *, prefix: str, suffix: str) -> StoredArtifact:
    """Write bytes under a generated key (never a client's filename)."""
    key = f"{prefix.strip('/')}/{uuid.uuid4().hex}{suffix}"
    tmp_key = f"{key}.tmp-{uuid.uuid4().hex[:8]}"
    saved_tmp = default_storage.save(tmp_key, ContentFile(data))
    try:
        with default_storage.open(saved_tmp, "rb") as fh:
            final = default_storage.save(key, fh)
    finally:
        default_storage.delete(saved_tmp)
    return StoredArtifact(key=final, sha256=hashlib.sha256(data).hexdigest(), size=len(data))


def read_verified(key: str, sha256: str) -> bytes:
    with default_storage.open(key, "rb") as fh:
        data = fh.read()
    actual = hashlib.sha256(data).hexdigest()
    if actual != sha256:
        raise TamperedModelFile(f"Model file {key} does not match its recorded SHA-256; refusing to load it.")
    return data


# One load at a time per process: CPython 3.11.7 (this machine's) can raise "SystemError: AST
# constructor recursion depth mismatch" when two threads build ASTs at once (gh-106905, fixed in
# 3.11.8), which a skops load does; seen with the web and a worker thread loading together.
_LOAD_LOCK = threading.Lock()


def model_loads(data: bytes) -> Any:
    try:
        with _LOAD_LOCK:
            return sio.loads(data, trusted=list(TRUSTED_TYPES))
    except sio.exceptions.UntrustedTypesFoundException as exc:
        raise UntrustedModelFile(f"Model file holds types outside the allowlist: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - anything that is not a valid skops file
        raise UntrustedModelFile(f"Not a valid model file: {type(exc).__name__}: {exc}") from None


def model_load(key: str, sha256: str) -> Any:
    return model_loads(read_verified(key, sha256))


def open_bytes(key: str) -> io.BytesIO:
    with default_storage.open(key, "rb") as fh:
        return io.BytesIO(fh.read())

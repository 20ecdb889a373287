"""Model files: tampered bytes refused before deserialisation, types outside the allowlist
refused, pickles never loaded (CVE-2024-37052 family)."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import skops.io as sio
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from sklearn.linear_model import LogisticRegression

from mlplatform.artifacts import TamperedModelFile, UntrustedModelFile, model_load, model_save

pytestmark = pytest.mark.django_db


def _fitted():
    X = np.random.default_rng(0).normal(size=(40, 3))
    return LogisticRegression().fit(X, (X[:, 0] > 0).astype(int))


def test_model_round_trips_with_hash_check():
    stored = model_save(_fitted(), prefix="security-tests")
    model = model_load(stored.key, stored.sha256)
    assert model.predict(np.zeros((1, 3))).shape == (1,)


def test_tampered_file_is_refused_before_deserialisation(tmp_path, monkeypatch):
    stored = model_save(_fitted(), prefix="security-tests")
    with default_storage.open(stored.key, "rb") as fh:
        data = bytearray(fh.read())
    data[-10] ^= 0xFF
    default_storage.delete(stored.key)
    default_storage.save(stored.key, ContentFile(bytes(data)))
    called = []
    monkeypatch.setattr(sio, "loads", lambda *a, **k: called.append(1))
    with pytest.raises(TamperedModelFile):
        model_load(stored.key, stored.sha256)
    assert not called, "skops must not see bytes whose hash does not match"


class Evil:
    """A type outside the allowlist."""

    def __init__(self):
        self.x = 1


def test_type_outside_allowlist_fails_cleanly():
    stored_bytes = sio.dumps({"model": Evil()})
    import hashlib

    key = default_storage.save("security-tests/evil.skops", ContentFile(stored_bytes))
    with pytest.raises(UntrustedModelFile) as excinfo:
        model_load(key, hashlib.sha256(stored_bytes).hexdigest())
    assert "allowlist" in str(excinfo.value)


class Payload:
    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickle_with_payload_is_never_loaded(tmp_path):
    marker = tmp_path / "pwned"
    data = pickle.dumps(Payload(str(marker)))
    import hashlib

    key = default_storage.save("security-tests/model.skops", ContentFile(data))
    with pytest.raises(UntrustedModelFile):
        model_load(key, hashlib.sha256(data).hexdigest())
    assert not marker.exists()
    assert not os.path.exists(str(marker))


def _lightgbm(**params):
    from lightgbm import LGBMClassifier

    X = np.random.default_rng(0).normal(size=(60, 3))
    return X, LGBMClassifier(n_estimators=5, verbose=-1, **params).fit(X, (X[:, 0] > 0).astype(int))


def test_lightgbm_model_round_trips_through_the_allowlist():
    X, model = _lightgbm()
    stored = model_save(model, prefix="security-tests")
    loaded = model_load(stored.key, stored.sha256)
    np.testing.assert_allclose(loaded.predict_proba(X), model.predict_proba(X))


def _stored(data: bytes) -> tuple[str, str]:
    import hashlib

    return default_storage.save("security-tests/hostile.skops", ContentFile(data)), hashlib.sha256(data).hexdigest()


def test_lightgbm_beside_an_untrusted_function_is_still_refused(tmp_path):
    """Trusting LightGBM's three types trusts nothing else: a LightGBM model with os.system next to it,
    or as its custom objective, is refused."""
    _, model = _lightgbm()
    key, sha = _stored(sio.dumps({"model": model, "hook": os.system}))
    with pytest.raises(UntrustedModelFile, match="system"):
        model_load(key, sha)
    model.set_params(objective=os.system)
    key, sha = _stored(sio.dumps(model))
    with pytest.raises(UntrustedModelFile, match="system"):
        model_load(key, sha)


def test_other_lightgbm_types_are_not_trusted():
    from lightgbm import LGBMRanker

    X = np.random.default_rng(0).normal(size=(40, 3))
    ranker = LGBMRanker(n_estimators=3, verbose=-1, min_child_samples=2).fit(X, np.arange(40) % 3, group=[20, 20])
    key, sha = _stored(sio.dumps(ranker))
    with pytest.raises(UntrustedModelFile, match="LGBMRanker"):
        model_load(key, sha)

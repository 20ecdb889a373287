"""Helpers for dataset tests: messy frames, uploads, waiting for versions."""

from __future__ import annotations

import io
import time

import numpy as np
import pandas as pd
from django.core.files.uploadedfile import SimpleUploadedFile


def messy_frame(n: int = 300, seed: int = 0) -> pd.DataFrame:
    """Missing values, duplicates, text categories, outliers, a capped column, dates, an id."""
    rng = np.random.default_rng(seed)
    income = np.minimum(rng.exponential(6, n), 15.0)
    frame = pd.DataFrame(
        {
            "customer_id": np.arange(1000, 1000 + n),
            "age": rng.normal(40, 12, n).round(1),
            "income": income,
            "city": rng.choice(["Paris", "Lyon", "Nice", "Lille"], n),
            "signup": pd.date_range("2021-01-01", periods=n, freq="D").strftime("%Y-%m-%d"),
            "balance": rng.normal(1000, 200, n),
            "churn": rng.choice(["no", "yes"], n, p=[0.75, 0.25]),
        }
    )
    frame.loc[::7, "age"] = np.nan
    frame.loc[::11, "city"] = None
    frame.loc[3, "balance"] = 50_000.0  # an outlier
    frame.loc[5, "balance"] = -40_000.0
    return pd.concat([frame, frame.head(12)], ignore_index=True)  # 12 duplicate rows


def csv_upload(
    frame: pd.DataFrame, name: str = "data.csv", sep: str = ",", encoding: str = "utf-8"
) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, frame.to_csv(index=False, sep=sep).encode(encoding), content_type="text/csv")


def parquet_bytes(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


def wait_version(version_id: int, timeout: float = 60.0, profiled: bool = True):
    """Wait until a version is failed, or ready (with its profile when `profiled`)."""
    from datasets.models import DatasetVersion

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = DatasetVersion.objects.get(pk=version_id)
        if v.status == "failed" or (v.status == "ready" and (v.profile or not profiled)):
            return v
        time.sleep(0.1)
    raise AssertionError(f"version {version_id} still {v.status} after {timeout}s")


def wait_profile_change(version_id: int, predicate, timeout: float = 60.0):
    from datasets.models import DatasetVersion

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = DatasetVersion.objects.get(pk=version_id)
        if predicate(v):
            return v
        time.sleep(0.1)
    raise AssertionError("profile did not change in time")

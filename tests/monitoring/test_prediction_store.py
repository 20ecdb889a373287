"""The columnar prediction store: the drainer's segments, the hand-off's guarantees, snapshots read
from segments, retention, compaction, retrain and reviews (real PostgreSQL, real storage)."""

from __future__ import annotations

import json
from datetime import timedelta

import numpy as np
import pytest
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.db import DatabaseError, connection
from django.utils import timezone

from deployments import prediction_store
from deployments.models import Deployment, Prediction, PredictionSegment, logged_prediction, uuid7
from deployments.monitoring.services import snapshots
from deployments.monitoring.services.retrain import labelled_production_frame
from deployments.serving import prediction_log
from tests.monitoring.helpers import FEATURES, NUMERIC, log_predictions, make_deployment, make_frame

pytestmark = pytest.mark.django_db


@pytest.fixture
def deployment(team):
    return make_deployment(team.project, team.owner)


def queued_rows(deployment, *, n=300, seed=3, minutes_ago=10.0, status="accepted", shift=0.0) -> list[str]:
    """Prediction rows as the predict API queues them (encoded JSON), with the deployed model's answers."""
    from mlplatform.artifacts import model_load

    frame = make_frame(n=n, seed=seed)
    frame["x0"] = frame["x0"] + shift
    mv = deployment.model_version
    pipe = model_load(mv.artifact_key, mv.sha256)
    preds = pipe.predict(frame[FEATURES])
    conf = pipe.predict_proba(frame[FEATURES]).max(axis=1)
    now = timezone.now() - timedelta(minutes=minutes_ago)
    rows = []
    for i in range(n):
        row = logged_prediction(
            id=uuid7(),
            project_id=deployment.project_id,
            deployment_id=deployment.pk,
            model_version_id=mv.pk,
            source="api",
            inputs={**{c: float(frame.at[i, c]) for c in NUMERIC}, "color": frame.at[i, "color"]},
            prediction=int(preds[i]),
            confidence=float(conf[i]),
            probabilities=None,
            status=status,
            caller="key:1",
            latency_ms=5.0 + i % 10,
            created_at=now + timedelta(milliseconds=i),
        )
        rows.append(prediction_log.encode(row))
    return rows


def drain(items: list[str]) -> int:
    """What a drainer does with a claimed batch (the real function; the queue itself is tested in
    tests/deployments/test_prediction_log.py)."""
    return prediction_log._insert(items)


def test_a_drained_batch_is_one_segment_and_its_features_read_back(deployment):
    items = queued_rows(deployment, n=200)
    assert drain(items) == 200
    rows = Prediction.objects.filter(deployment=deployment)
    assert rows.count() == 200 and not rows.filter(inputs__isnull=False).exists()
    (segment,) = PredictionSegment.objects.filter(deployment=deployment)
    assert segment.rows == 200 and segment.bytes > 0 and default_storage.exists(segment.path)
    assert f"deployments/{deployment.pk}/predictions/date=" in segment.path and "/hour=" in segment.path
    first = rows.order_by("created_at").first()
    sent = json.loads(items[0])
    assert prediction_store.prediction_inputs(first) == pytest.approx(sent["inputs"])
    # A claim recovered after its drain committed inserts nothing and writes no second segment.
    assert drain(items) == 0
    assert PredictionSegment.objects.filter(deployment=deployment).count() == 1
    assert Prediction.objects.filter(deployment=deployment).count() == 200


@pytest.fixture
def segment_insert_fails():
    """A real failure after the segment file is written and before the commit: PostgreSQL refuses
    the segment row (a trigger), so the transaction with the Prediction rows rolls back."""
    with connection.cursor() as cur:
        cur.execute(
            "CREATE FUNCTION mlp_refuse() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'disk full'; END $$ "
            "LANGUAGE plpgsql; CREATE TRIGGER mlp_refuse BEFORE INSERT ON deployments_predictionsegment "
            "FOR EACH ROW EXECUTE FUNCTION mlp_refuse()"
        )
    yield
    with connection.cursor() as cur:
        cur.execute("DROP TRIGGER IF EXISTS mlp_refuse ON deployments_predictionsegment")


def test_a_drain_failing_between_file_write_and_commit_loses_and_doubles_nothing(deployment, segment_insert_fails):
    items = queued_rows(deployment, n=150)
    before = set(prediction_store._walk(f"projects/{deployment.project_id}/deployments/{deployment.pk}/predictions"))
    with pytest.raises(DatabaseError):
        drain(items)
    assert not Prediction.objects.filter(deployment=deployment).exists()
    assert not PredictionSegment.objects.filter(deployment=deployment).exists()
    root = f"projects/{deployment.project_id}/deployments/{deployment.pk}/predictions"
    orphans = set(prediction_store._walk(root)) - before
    assert len(orphans) == 1  # the file was written; no segment row names it
    with connection.cursor() as cur:
        cur.execute("DROP TRIGGER mlp_refuse ON deployments_predictionsegment")
    assert drain(items) == 150  # the claim is retried: every row once
    assert drain(items) == 0  # and once more after the commit: nothing twice
    (segment,) = PredictionSegment.objects.filter(deployment=deployment)
    assert segment.rows == 150
    # (files of earlier test runs with the same ids may be swept too: hence >=)
    assert prediction_store.orphans_sweep(older_than=timedelta(0), deployment=deployment) >= 1
    assert set(prediction_store._walk(root)) == {segment.path}
    start = timezone.now() - timedelta(hours=1)
    assert prediction_store.window_table(deployment, start, timezone.now(), ["x0"]).num_rows == 150


def _drift(snapshot) -> dict:
    d = snapshot.data["drift"]
    return {
        "n": d["sample_size"],
        "features": {f["feature"]: (f["psi"], f["p_value"], f["status"]) for f in d["features"]},
        "outputs": {k: (v["psi"], v["p_value"]) for k, v in snapshot.data["outputs"].items()},
    }


def test_a_snapshot_over_segments_equals_the_json_result(team, deployment):
    """The same predictions, once as JSON rows in PostgreSQL (the old path), once drained into
    segments (another deployment of the same version): the same drift, to the last digit."""
    twin = Deployment.objects.create(
        project=deployment.project, name="twin", model_version=deployment.model_version, created_by=team.owner
    )
    items = queued_rows(deployment, n=600, shift=0.4)
    for raw in items:  # the old path: JSON inputs in PostgreSQL
        row = json.loads(raw)
        Prediction.objects.create(**{k: v for k, v in row.items() if k not in ("id",)}, id=row["id"], actual_source="")
    moved = [raw.replace(f'"deployment_id":{deployment.pk},', f'"deployment_id":{twin.pk},') for raw in items]
    moved = [
        raw.replace(row_id, str(uuid7()))
        for raw, row_id in zip(moved, [json.loads(r)["id"] for r in items], strict=True)
    ]
    assert drain(moved[:250]) + drain(moved[250:]) == 600
    assert not Prediction.objects.filter(deployment=twin, inputs__isnull=False).exists()
    old = _drift(snapshots.snapshot_compute(deployment=deployment))
    new = _drift(snapshots.snapshot_compute(deployment=twin))
    assert old["n"] == new["n"] == 600
    assert new["features"].keys() == old["features"].keys() == {"x0", "x1", "x2", "x3", "color"}
    for name, (psi, p, status) in old["features"].items():
        assert new["features"][name][0] == pytest.approx(psi) and new["features"][name][2] == status
        assert new["features"][name][1] == pytest.approx(p)
    for name, values in old["outputs"].items():
        assert new["outputs"][name] == pytest.approx(values)


def test_a_window_mixing_json_rows_and_segments_counts_each_row_once(deployment):
    log_predictions(deployment, n=120, seed=5)  # JSON rows (older rows, the request's own writes)
    drain(queued_rows(deployment, n=180, seed=6))
    drain(queued_rows(deployment, n=40, seed=7, status="pending_review"))  # held: inputs stay in PostgreSQL
    held = Prediction.objects.filter(deployment=deployment, status="pending_review")
    assert held.count() == 40 and not held.filter(inputs__isnull=True).exists()
    assert PredictionSegment.objects.get(deployment=deployment).rows == 180
    snap = snapshots.snapshot_compute(deployment=deployment)
    assert snap.data["drift"]["sample_size"] == 340
    assert snap.data["traffic"]["predictions"] == 340


def test_retention_deletes_expired_rows_and_frees_their_files(deployment):
    drain(queued_rows(deployment, n=100, seed=1, minutes_ago=60 * 24 * 10))  # ten days old
    drain(queued_rows(deployment, n=50, seed=2, minutes_ago=5))
    old_seg = PredictionSegment.objects.filter(deployment=deployment).order_by("min_time").first()
    deployment.prediction_retention_days = 7
    deployment.save(update_fields=["prediction_retention_days"])
    result = prediction_store.retention_apply(deployment)
    assert result["predictions"] == 100 and result["segments"] == 1 and result["bytes_freed"] == old_seg.bytes
    assert not default_storage.exists(old_seg.path)
    assert Prediction.objects.filter(deployment=deployment).count() == 50
    assert PredictionSegment.objects.filter(deployment=deployment).count() == 1


def test_retention_rewrites_a_segment_straddling_the_cutoff(deployment):
    items = queued_rows(deployment, n=100, minutes_ago=60 * 24 * 3)
    drain(items)
    (seg,) = PredictionSegment.objects.filter(deployment=deployment)
    deployment.prediction_retention_days = 3
    cut = seg.min_time + (seg.max_time - seg.min_time) / 2 + timedelta(days=3)
    result = prediction_store.retention_apply(deployment, now=cut)
    assert result["predictions"] == 50 == Prediction.objects.filter(deployment=deployment).count()
    (new,) = PredictionSegment.objects.filter(deployment=deployment)
    assert new.rows == 50 and not default_storage.exists(seg.path) and default_storage.exists(new.path)


def test_compaction_merges_an_hours_segments_without_changing_the_window(deployment):
    # Three segments inside one closed hour, whatever the clock says (180 minutes ago can straddle an hour).
    now = timezone.now()
    mid_hour = (now - timedelta(hours=3)).replace(minute=20, second=0, microsecond=0)
    for k in range(3):
        drain(queued_rows(deployment, n=60, seed=k, minutes_ago=(now - mid_hour).total_seconds() / 60 - k))
    start, end = timezone.now() - timedelta(hours=5), timezone.now()
    before = prediction_store.window_table(deployment, start, end, ["x0", "color"])
    paths = list(PredictionSegment.objects.filter(deployment=deployment).values_list("path", flat=True))
    assert prediction_store.compact(deployment) == 3
    (seg,) = PredictionSegment.objects.filter(deployment=deployment)
    assert seg.rows == 180 and seg.compacted and not any(default_storage.exists(p) for p in paths)
    after = prediction_store.window_table(deployment, start, end, ["x0", "color"])
    assert sorted(after.column("x0").to_pylist()) == sorted(before.column("x0").to_pylist())


def test_retrain_reads_the_features_of_labelled_rows_from_segments(deployment):
    items = queued_rows(deployment, n=80, seed=9)
    drain(items)
    labelled = list(Prediction.objects.filter(deployment=deployment).order_by("created_at")[:30])
    Prediction.objects.filter(pk__in=[p.pk for p in labelled]).update(
        actual=1, actual_source="feedback", actual_at=timezone.now()
    )
    frame, _meta = labelled_production_frame(deployment, FEATURES, "label")
    assert len(frame) == 30 and not frame[FEATURES].isna().any().any()
    sent = [json.loads(r)["inputs"] for r in items[:30]]
    np.testing.assert_allclose(frame["x0"].to_numpy(), [s["x0"] for s in sent])
    assert list(frame["color"]) == [s["color"] for s in sent]


def test_existing_json_rows_move_into_segments_once(deployment):
    log_predictions(deployment, n=250, seed=4, minutes_ago=30)
    log_predictions(deployment, n=20, seed=5, minutes_ago=20)
    Prediction.objects.filter(deployment=deployment, created_at__gte=timezone.now() - timedelta(minutes=25)).update(
        status="pending_review"
    )
    from deployments.models import ReviewItem
    from deployments.reviews.context import review_item_detail

    flagged = Prediction.objects.filter(deployment=deployment, status="accepted").order_by("created_at").first()
    item = ReviewItem.objects.create(
        project=deployment.project,
        deployment=deployment,
        prediction=flagged,
        model_label="1",
        confidence=0.6,
        reason="sample",
        mode="flag",
    )
    before = snapshots.snapshot_compute(deployment=deployment).data["drift"]
    call_command("prediction_store_migrate", batch=100)
    call_command("prediction_store_migrate", batch=100)  # again: nothing left to move
    # held for review, and the flagged row with its review item: the review pages read them
    assert Prediction.objects.filter(deployment=deployment, inputs__isnull=False).count() == 21
    assert sum(PredictionSegment.objects.filter(deployment=deployment).values_list("rows", flat=True)) == 249
    features = {f["name"]: f["value"] for f in review_item_detail(item=ReviewItem.objects.get(pk=item.pk))["features"]}
    assert features["color"] == flagged.inputs["color"]
    after = snapshots.snapshot_compute(deployment=deployment).data["drift"]
    assert after["sample_size"] == before["sample_size"] == 270
    assert {f["feature"]: f["psi"] for f in after["features"]} == pytest.approx(
        {f["feature"]: f["psi"] for f in before["features"]}
    )

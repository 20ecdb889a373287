"""Dates written as text: recognised in common formats, the format recorded by the profile and
used the same way by recipes (saved with the model), time splits and inference."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from datasets.dates import detect_date_format, epoch_format, parse_dates
from datasets.kinds import CATEGORICAL, DATETIME, NUMERIC, infer_kind
from datasets.profiling import profile_frame
from datasets.recipes import RecipeError, compile_recipe
from datasets.splitting import TEST, assign_split
from mlplatform.artifacts import model_dumps, model_loads


@pytest.mark.parametrize(
    ("values", "fmt", "first"),
    [
        (["Mar-2018", "Jan-2018", "Feb-2018"], "%b-%Y", "2018-03-01"),
        (["2018-03", "2018-04"], "ISO8601", "2018-03-01"),
        (["03/2018", "12/2019"], "%m/%Y", "2018-03-01"),
        (["2018-03-01", "2019-12-31"], "ISO8601", "2018-03-01"),
        (["01/03/2018", "13/03/2018"], "%d/%m/%Y", "2018-03-01"),
        (["03/13/2018", "01/03/2018"], "%m/%d/%Y", "2018-03-13"),
        (["1 Mar 2018", "12 Dec 2019"], "%d %b %Y", "2018-03-01"),
        (["2018-03-01T10:00:00Z", "2018-03-01T11:00:00+02:00"], "ISO8601", "2018-03-01 10:00:00"),
        (["Mar 1, 2018", "Dec 12, 2019"], "%b %d, %Y", "2018-03-01"),
        (["31.12.2018", "01.01.2019"], "%d.%m.%Y", "2018-12-31"),
        (["13/03/2018 10:22", "14/03/2018 11:00"], "%d/%m/%Y %H:%M", "2018-03-13 10:22:00"),
        (["Mar-18", "Apr-19"], "%b-%y", "2018-03-01"),
    ],
)
def test_common_date_formats_are_recognised_with_their_format(values, fmt, first):
    series = pd.Series(values * 5)
    guess = detect_date_format(series)
    assert guess is not None and guess.format == fmt and not guess.ambiguous
    assert parse_dates(series, guess.format)[0] == pd.Timestamp(first)
    assert infer_kind(series) == DATETIME


def test_day_month_order_undecided_by_the_data_is_marked_ambiguous():
    guess = detect_date_format(pd.Series(["01/03/2018", "02/04/2018"] * 5))
    assert guess.format == "%m/%d/%Y" and guess.ambiguous
    profile = profile_frame(pd.DataFrame({"d": ["01/03/2018", "02/04/2018"] * 30}))
    column = profile["columns"][0]
    assert column["date_ambiguous"] and any("day / month order" in f for f in column["facts"])


def test_the_format_is_decided_on_values_from_the_whole_column_not_its_head():
    # A sorted log: its first 2,000 rows all fall on the first two days (day <= 12).
    times = pd.Series(pd.date_range("2020-01-01", periods=60_000, freq="min")).dt.strftime("%d/%m/%Y %H:%M")
    assert detect_date_format(times).format == "%d/%m/%Y %H:%M"


@pytest.mark.parametrize("values", [["red", "green"], ["grade_1", "grade_2"], ["2018-2019", "2019-2020"], ["A1", "B2"]])
def test_categories_are_not_dates(values):
    assert detect_date_format(pd.Series(values * 10)) is None
    assert infer_kind(pd.Series(values * 10)) == CATEGORICAL


def test_unix_times_only_when_the_name_says_so():
    seconds = pd.Series(np.arange(1_520_000_000, 1_520_000_000 + 86_400 * 60, 86_400))
    assert epoch_format("created_ts", seconds) == "epoch_s"
    assert epoch_format("eventTimestamp", seconds * 1000) == "epoch_ms"
    assert epoch_format("amount", seconds) is None
    profile = profile_frame(pd.DataFrame({"created_ts": seconds}))
    column = profile["columns"][0]
    assert column["kind"] == NUMERIC and column["date_format"] == "epoch_s"  # numbers stay numbers...
    assert any("2018-03-02" in f and "date_parts" in f for f in column["facts"])  # ...with their dates told


def _day_first_frame(n: int = 120) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    days = pd.date_range("2021-01-01", periods=n, freq="3D")
    return pd.DataFrame({"when": days.strftime("%d/%m/%Y"), "x": rng.normal(size=n), "y": rng.choice(["a", "b"], n)})


def test_auto_recipe_reads_dates_with_the_recognised_format_and_keeps_it_in_the_model():
    frame = _day_first_frame()
    plan = compile_recipe([], frame=frame, target="y")
    fitted = plan.preprocessor.fit(frame[plan.feature_columns])
    loaded = model_loads(model_dumps(fitted))
    # An ambiguous-looking single row at inference is read as training read the column: 1 March.
    row = pd.DataFrame({"when": ["01/03/2021"], "x": [0.0]})
    names = [n for n in fitted.get_feature_names_out()]
    month = names.index("dates__when_month")
    assert loaded.transform(row)[0, month] == 3.0
    assert fitted.named_transformers_["dates"].named_steps["parts"].formats_ == ["%d/%m/%Y"]


def test_date_parts_step_takes_a_format_and_refuses_a_wrong_one():
    frame = _day_first_frame()
    steps = [{"op": "date_parts", "columns": ["when"], "parts": ["month"], "format": "%d/%m/%Y"}]
    plan = compile_recipe(steps, frame=frame, target="y")
    out = plan.preprocessor.fit(frame[plan.feature_columns]).transform(pd.DataFrame({"when": ["02/03/2021"], "x": [0]}))
    assert 3.0 in out[0]
    with pytest.raises(RecipeError) as bad:
        compile_recipe([{**steps[0], "format": "%Y-%m-%d"}], frame=frame, target="y")
    assert bad.value.field == "steps[0].format" and "'when'" in str(bad.value)
    with pytest.raises(RecipeError) as nonsense:
        compile_recipe([{**steps[0], "format": "daily"}], frame=frame, target="y")
    assert nonsense.value.field == "steps[0].format"


def test_date_parts_on_unix_seconds_with_the_epoch_format():
    seconds = np.arange(1_520_000_000, 1_520_000_000 + 86_400 * 100, 86_400)
    frame = pd.DataFrame({"created_ts": seconds, "y": np.resize(["a", "b"], 100)})
    steps = [{"op": "date_parts", "columns": ["created_ts"], "parts": ["year", "month"], "format": "epoch_s"}]
    plan = compile_recipe(steps, frame=frame, target="y")
    out = plan.preprocessor.fit_transform(frame[plan.feature_columns])
    assert out[0].tolist() == [2018.0, 3.0]


def test_time_split_orders_day_first_dates_by_their_real_order():
    frame = _day_first_frame()
    shuffled = frame.sample(frac=1.0, random_state=1).reset_index(drop=True)
    result = assign_split(shuffled, strategy="time", test_size=0.2, val_size=0.0, seed=0, column="when")
    test_days = pd.to_datetime(shuffled.loc[result.assignment == TEST, "when"], format="%d/%m/%Y")
    rest_days = pd.to_datetime(shuffled.loc[result.assignment != TEST, "when"], format="%d/%m/%Y")
    assert test_days.min() > rest_days.max()  # per-value parsing would mix 01/03 (Jan 3) into the latest

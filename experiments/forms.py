from __future__ import annotations

import json

from django import forms

from experiments.ml import catalogue, search, training
from mlplatform import jsonguard
from projects.metrics import METRICS, metrics_for


class ExperimentForm(forms.Form):
    name = forms.CharField(max_length=120, required=False)
    dataset_version = forms.ChoiceField(help_text="Only versions with a train / validation / test split.")
    target = forms.ChoiceField(label="Target column", help_text="The column the model learns to predict.")
    metric = forms.ChoiceField(required=False, help_text="Defaults to the project's success metric.")
    cv_folds = forms.IntegerField(min_value=2, max_value=20, initial=5, label="CV folds")
    cv_strategy = forms.ChoiceField(
        choices=[(s, s) for s in training.CV_STRATEGIES],
        initial="auto",
        label="CV strategy",
        help_text="auto matches the split.",
    )
    algorithms = forms.MultipleChoiceField(widget=forms.CheckboxSelectMultiple, required=False)
    method = forms.ChoiceField(
        choices=[("tpe", "Bayesian (Optuna TPE)"), ("random", "Random"), ("grid", "Grid")],
        initial="tpe",
        label="Search",
    )
    n_trials = forms.IntegerField(
        min_value=0, max_value=500, initial=10, label="Trials", help_text="Candidate trials (budget)."
    )
    timeout_seconds = forms.IntegerField(
        min_value=1, required=False, label="Time budget (s)", help_text="Wall-time budget (optional)."
    )
    ensemble_k = forms.IntegerField(
        min_value=0,
        max_value=10,
        initial=3,
        label="Ensemble of the top k",
        help_text="Vote of the top k runs; 0 for none.",
    )
    spaces = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 6, "class": "mono"}),
        required=False,
        help_text='Edit search spaces as JSON, e.g. {"random_forest": {"n_estimators": {"type": "int", "low": 50, "high": 200}}}.',
    )
    # The recipe editor writes its steps here (JSON); `recipe_base` names the saved recipe they
    # came from when unchanged, so the experiment reuses it instead of saving a copy.
    recipe = forms.CharField(
        widget=forms.HiddenInput(attrs={"data-recipe-output": "experiment-recipe"}), required=False
    )
    recipe_base = forms.IntegerField(
        widget=forms.HiddenInput(attrs={"data-recipe-base": "experiment-recipe"}), required=False
    )
    recipe_name = forms.CharField(
        max_length=120,
        required=False,
        widget=forms.TextInput(attrs={"data-recipe-name": "experiment-recipe"}),
        label="Save the recipe as",
        help_text="Edited recipes are saved (versioned by name) with the experiment; empty: a name from the data.",
    )

    def __init__(self, *args, project, versions, **kwargs):
        super().__init__(*args, **kwargs)
        task = project.task_type
        self.fields["dataset_version"].choices = [
            (v.pk, f"{v.dataset.name} v{v.number} ({v.row_count:,} rows)") for v in versions
        ]
        chosen = str(self.data.get("dataset_version") or self.initial.get("dataset_version") or "")
        version = next((v for v in versions if str(v.pk) == chosen), versions[0] if versions else None)
        self.columns = {str(v.pk): [c["name"] for c in v.schema or [] if c.get("name")] for v in versions}
        self.fields["target"].choices = [("", "— choose —")] + [
            (c, c) for c in (self.columns.get(str(version.pk), []) if version else [])
        ]
        self.fields["metric"].choices = [("", "Project default")] + [(m, METRICS[m].label) for m in metrics_for(task)]
        self.fields["algorithms"].choices = [
            (a.key, a.label) for a in catalogue.algorithms_for(task) if a.key != "dummy"
        ]
        self.fields["algorithms"].initial = catalogue.DEFAULT_ALGORITHMS[task]
        defaults = {k: catalogue.get_algorithm(task, k).space for k in catalogue.DEFAULT_ALGORITHMS[task]}
        self.fields["spaces"].initial = json.dumps(defaults, indent=1)
        self.fields["method"].choices = [(m, dict(self.fields["method"].choices)[m]) for m in search.METHODS[::-1]]
        self.fields["method"].initial = "tpe"

    def clean_spaces(self):
        raw = self.cleaned_data.get("spaces") or ""
        if not raw.strip():
            return {}
        try:
            value = jsonguard.loads(raw)
        except ValueError as exc:
            raise forms.ValidationError(f"Not valid JSON: {exc}") from None
        if not isinstance(value, dict):
            raise forms.ValidationError("An object keyed by algorithm.")
        return value

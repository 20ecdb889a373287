from __future__ import annotations

import json

from django import forms

from experiments.ml import catalogue, search, training
from projects.metrics import METRICS, metrics_for


class ExperimentForm(forms.Form):
    name = forms.CharField(max_length=120, required=False)
    dataset_version = forms.ChoiceField(help_text="Only versions with a train / validation / test split.")
    target = forms.CharField(max_length=200)
    metric = forms.ChoiceField(required=False, help_text="Defaults to the project's success metric.")
    cv_folds = forms.IntegerField(min_value=2, max_value=20, initial=5)
    cv_strategy = forms.ChoiceField(
        choices=[(s, s) for s in training.CV_STRATEGIES], initial="auto", help_text="auto matches the split."
    )
    algorithms = forms.MultipleChoiceField(widget=forms.CheckboxSelectMultiple, required=False)
    method = forms.ChoiceField(
        choices=[("tpe", "Bayesian (Optuna TPE)"), ("random", "Random"), ("grid", "Grid")], initial="tpe"
    )
    n_trials = forms.IntegerField(min_value=0, max_value=500, initial=10, help_text="Candidate trials (budget).")
    timeout_seconds = forms.IntegerField(min_value=1, required=False, help_text="Wall-time budget (optional).")
    ensemble_k = forms.IntegerField(
        min_value=0, max_value=10, initial=3, help_text="Vote of the top k runs; 0 for none."
    )
    spaces = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 6, "class": "mono"}),
        required=False,
        help_text='Edit search spaces as JSON, e.g. {"random_forest": {"n_estimators": {"type": "int", "low": 50, "high": 200}}}.',
    )

    def __init__(self, *args, project, versions, **kwargs):
        super().__init__(*args, **kwargs)
        task = project.task_type
        self.fields["dataset_version"].choices = [
            (v.pk, f"{v.dataset.name} v{v.number} ({v.row_count} rows)") for v in versions
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
            value = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(f"Not valid JSON: {exc}") from None
        if not isinstance(value, dict):
            raise forms.ValidationError("An object keyed by algorithm.")
        return value

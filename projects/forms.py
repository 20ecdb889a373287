from __future__ import annotations

from django import forms

from mlplatform import jsonguard
from projects.cost_matrix import COST_KEYS, CostMatrixError, cost_matrix_parse
from projects.metrics import METRICS, TaskType
from projects.models import AssumptionStatus, Decision, GateStrictness
from projects.roles import Role

METRIC_CHOICES = [("", "—")] + [(m.name, f"{m.label} ({m.task_type})") for m in METRICS.values()]


class ProjectForm(forms.Form):
    name = forms.CharField(max_length=120)
    task_type = forms.ChoiceField(choices=TaskType.choices)
    objective = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4}), required=False, help_text="What the business wants, in plain English."
    )
    usage = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}), required=False, label="How the model will be used"
    )
    current_solution = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}),
        required=False,
        help_text="What is done today. Its score is the baseline to beat.",
    )
    success_metric = forms.ChoiceField(choices=METRIC_CHOICES, required=False)
    success_threshold = forms.FloatField(required=False, help_text="The score the model must reach.")
    baseline_score = forms.FloatField(required=False, help_text="The current solution's score.")
    gate_strictness = forms.ChoiceField(choices=GateStrictness.choices, required=False)
    assumptions_json = forms.CharField(widget=forms.HiddenInput, required=False)
    # The optional cost matrix (binary classification): one field per cost, all blank for none.
    cost_unit = forms.CharField(
        max_length=20,
        required=False,
        label="Cost unit",
        help_text="Decisions by cost (optional, binary classification): the unit of the costs below, e.g. EUR "
        "or minutes. Leave all of them blank for none.",
    )
    cost_false_positive = forms.FloatField(
        required=False, min_value=0, label="Cost of a false positive", help_text="A wrong positive decision."
    )
    cost_false_negative = forms.FloatField(
        required=False, min_value=0, label="Cost of a false negative", help_text="A missed positive."
    )
    cost_review = forms.FloatField(
        required=False, min_value=0, label="Cost of a human review", help_text="Blank: review is not an option."
    )
    cost_true_positive = forms.FloatField(required=False, min_value=0, label="Cost of a true positive (default 0)")
    cost_true_negative = forms.FloatField(required=False, min_value=0, label="Cost of a true negative (default 0)")

    @staticmethod
    def cost_initial(cost_matrix: dict | None) -> dict[str, object]:
        cm = cost_matrix or {}
        return {"cost_unit": cm.get("unit", "")} | {f"cost_{k}": cm.get(k) for k in COST_KEYS}

    def clean(self) -> dict:
        data = super().clean()
        raw = {k: data.get(f"cost_{k}") for k in COST_KEYS}
        if (data.get("cost_unit") or "").strip() or any(v is not None for v in raw.values()):
            try:
                cm = cost_matrix_parse(
                    {"unit": data.get("cost_unit"), **{k: v for k, v in raw.items() if v is not None}}
                )
            except CostMatrixError as exc:
                name = "cost_" + exc.field.removeprefix("cost_matrix.")
                self.add_error(name if name in self.fields else None, exc.message)
                return data
            data["cost_matrix"] = cm.as_dict() if cm else None
        else:
            data["cost_matrix"] = None
        return data

    def clean_assumptions_json(self) -> list[dict[str, str]]:
        raw = self.cleaned_data.get("assumptions_json") or "[]"
        try:
            items = jsonguard.loads(raw)
        except ValueError:
            raise forms.ValidationError("Assumptions could not be read.") from None
        if not isinstance(items, list):
            raise forms.ValidationError("Assumptions could not be read.")
        cleaned = []
        for item in items:
            if not isinstance(item, dict) or not str(item.get("text", "")).strip():
                continue
            status = item.get("status") or AssumptionStatus.UNCHECKED
            if status not in AssumptionStatus.values:
                raise forms.ValidationError(f"Unknown assumption status {status!r}.")
            cleaned.append({"text": str(item["text"]).strip(), "status": status, "note": str(item.get("note", ""))})
        return cleaned


class DecisionForm(forms.Form):
    decision = forms.ChoiceField(choices=Decision.choices)
    decision_rationale = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False, label="Rationale")


class MemberForm(forms.Form):
    username = forms.CharField(max_length=150)
    role = forms.ChoiceField(choices=Role.choices)


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)


class WebhookForm(forms.Form):
    url = forms.CharField(
        max_length=200,
        required=False,
        label="Webhook URL",
        widget=forms.URLInput(attrs={"placeholder": "https://your-app.example.com/mlplatform-events"}),
    )

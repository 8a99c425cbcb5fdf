"""The review queue's filters: choices only from the user's own teams, so another team's id is invalid."""

from __future__ import annotations

from django import forms

from detectors.models import Detector, IncidentStatus, Severity
from detectors.selectors import detectors_for_user
from ingestion.models import Dataset
from teams.selectors import team_ids_for_user


class QueueFilters(forms.Form):
    dataset = forms.ModelChoiceField(queryset=Dataset.objects.none(), required=False, empty_label="All datasets")
    detector = forms.ModelChoiceField(queryset=Detector.objects.none(), required=False, empty_label="All detectors")
    severity = forms.ChoiceField(choices=[("", "Any severity"), *Severity.choices], required=False)
    status = forms.ChoiceField(choices=[("", "Open or closed"), *IncidentStatus.choices], required=False)

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["dataset"].queryset = Dataset.objects.filter(team__in=team_ids_for_user(user=user)).order_by("name")
        self.fields["detector"].queryset = detectors_for_user(user=user).order_by("name")

    def filters(self) -> dict:
        """The cleaned filters as `queue_claim` takes them (ids, not rows); empty ones left out."""
        data = self.cleaned_data
        found = {"dataset": data["dataset"], "detector": data["detector"]}
        chosen = {key: row.pk for key, row in found.items() if row is not None}
        return chosen | {key: data[key] for key in ("severity", "status") if data[key]}

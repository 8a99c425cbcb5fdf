"""Labels, the audit log and retrainings in the admin, and verdicts as actions on the incidents list.

`detectors` knows nothing of feedback, so its incident and detector admins are registered again here as
subclasses that add the feedback actions (this app is installed after detectors).
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.utils.html import format_html

from detectors import admin as detectors_admin
from detectors.models import Anomaly, Detector, IncidentKind
from feedback.models import AuditLog, Label, Retraining, RetrainingTrigger, Verdict
from feedback.selectors import review_url
from feedback.services.labels import INCIDENT_VERDICTS, LabelError, anomalies_label
from feedback.services.retraining import retraining_queue, retraining_rollback
from ingestion.admin import LargeTableAdmin
from teams.admin_scoping import TeamScopedAdmin


def _verdict_action(verdict: str):
    """An admin action giving the selected incidents one verdict, as the review queue does."""

    @admin.action(description=f"Label: {Verdict(verdict).label.lower()}", permissions=["change"])
    def action(modeladmin, request, queryset):
        observed = list(queryset.filter(kind=IncidentKind.OBSERVED))
        if len(observed) < queryset.count():
            modeladmin.message_user(request, "Skipped predicted and missed incidents: they take no verdict.",
                                    messages.WARNING)  # fmt: skip
        if not observed:
            return
        try:
            labels = anomalies_label(anomalies=observed, verdict=verdict, user=request.user)
        except LabelError as exc:
            modeladmin.message_user(request, str(exc), messages.ERROR)
            return
        modeladmin.message_user(request, f"Labelled {len(labels)} incident(s) {Verdict(verdict).label.lower()}.")

    action.__name__ = f"label_{verdict}"
    return action


admin.site.unregister(Anomaly)


@admin.register(Anomaly)
class AnomalyAdmin(detectors_admin.AnomalyAdmin):
    actions = [_verdict_action(verdict) for verdict in INCIDENT_VERDICTS]
    readonly_fields = [*detectors_admin.AnomalyAdmin.readonly_fields, "review_page"]

    @admin.display(description="Review")
    def review_page(self, obj: Anomaly) -> str:
        return format_html('<a href="{}">Open in the review queue</a>', review_url(obj.pk)) if obj.pk else "-"


admin.site.unregister(Detector)


@admin.register(Detector)
class DetectorAdmin(detectors_admin.DetectorAdmin):
    actions = [*detectors_admin.DetectorAdmin.actions, "retrain_from_labels"]

    @admin.action(description="Retrain from labels (a candidate, promoted only if better)", permissions=["change"])
    def retrain_from_labels(self, request, queryset):
        for detector in queryset.select_related("dataset"):
            retraining_queue(detector=detector, trigger=RetrainingTrigger.MANUAL, user=request.user)
        self.message_user(request, f"Queued {queryset.count()} retraining(s); see Retrainings.", messages.SUCCESS)


class ReadOnlyAdmin(TeamScopedAdmin, LargeTableAdmin):
    """Rows written only by services (with their audit trail): shown, never edited here."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Label)
class LabelAdmin(ReadOnlyAdmin):
    team_field = "detector__dataset__team"
    list_display = ["created_at", "verdict", "anomaly", "detector", "series", "source", "current", "created_by", "note"]
    list_filter = ["verdict", "source", "current", "detector"]
    list_select_related = ["anomaly", "detector", "series", "created_by"]
    search_fields = ["note", "detector__name"]


@admin.register(AuditLog)
class AuditLogAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "team", "actor", "action", "target_type", "target_id", "data"]
    list_filter = ["action", "target_type"]
    list_select_related = ["team", "actor"]


@admin.register(Retraining)
class RetrainingAdmin(ReadOnlyAdmin):
    team_field = "detector__dataset__team"
    list_display = ["created_at", "detector", "trigger", "status", "decision", "finished_at"]
    list_filter = ["status", "trigger"]
    list_select_related = ["detector"]
    readonly_fields = ["detector", "trigger", "status", "decision", "metrics", "label_count", "candidates",
                       "created_by", "created_at", "finished_at"]  # fmt: skip
    exclude = ["labels"]
    actions = ["roll_back"]

    def has_change_permission(self, request, obj=None) -> bool:
        # The list's roll back action asks for it; a retraining's own page stays read-only.
        return obj is None and super(ReadOnlyAdmin, self).has_change_permission(request)

    @admin.display(description="Labels learnt from")
    def label_count(self, obj: Retraining) -> int:
        return obj.labels.count()

    @admin.action(description="Roll back (make the versions it replaced active again)", permissions=["change"])
    def roll_back(self, request, queryset):
        restored = sum(
            retraining_rollback(retraining=r, user=request.user) for r in queryset.select_related("detector")
        )
        self.message_user(request, f"Restored {restored} model version(s).", messages.SUCCESS)

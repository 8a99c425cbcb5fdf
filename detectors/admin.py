import copy

from django import forms
from django.contrib import admin, messages
from django.db.models import Q
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from common.exceptions import ApplicationError
from detectors import tasks
from detectors.models import Anomaly, DetectionRun, Detector, ModelStatus, ModelVersion, RunTrigger
from detectors.selectors import detector_entities, detector_plot_data
from detectors.services import configs, modelling, runs
from ingestion.admin import LargeTableAdmin
from ingestion.models import Series
from ingestion.plots import line_svg
from teams.admin_scoping import TeamScopedAdmin

PLOTTED_SERIES = 3


class DetectorForm(forms.ModelForm):
    """Checks the configuration with the same rules as the API, each message on its field."""

    class Meta:
        model = Detector
        fields = ["dataset", *sorted(configs.EDITABLE_FIELDS)]

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        detector = copy.copy(self.instance)
        for name in configs.EDITABLE_FIELDS | {"dataset"}:
            if name in cleaned:
                setattr(detector, name, cleaned[name])
        try:
            configs.detector_validate(detector=detector)
        except ApplicationError as exc:
            field = exc.extra.get("field")
            self.add_error(field if field in self.fields else None, exc.message)
        return cleaned


@admin.register(Detector)
class DetectorAdmin(TeamScopedAdmin, admin.ModelAdmin):
    form = DetectorForm
    team_field = "dataset__team"
    list_display = ["name", "dataset", "algorithm", "sensitivity", "schedule_interval", "next_run_at", "realtime",
                    "enabled"]  # fmt: skip
    list_filter = ["algorithm", "enabled", "realtime", "joint_metrics", "dataset__team"]
    list_select_related = ["dataset"]
    search_fields = ["name", "dataset__name", "metric"]
    readonly_fields = ["next_run_at", "plots", "created_at", "updated_at"]
    actions = ["run_now", "backtest_history", "train_now"]
    fieldsets = [
        (None, {"fields": ["dataset", "name", "enabled"]}),
        ("Latest points, anomalies and expected band", {"fields": ["plots"]}),
        ("What to watch", {"fields": ["metric", "label_filter", "joint_metrics"]}),
        ("How", {"fields": ["algorithm", "params", "sensitivity", "training_points"]}),
        ("Forecast band (expected range from stored forecasts)", {"fields": ["forecast_config", "forecast_level"]}),
        ("Incidents", {"fields": ["close_after", "adapt_after", "mask_after"]}),
        ("When", {"fields": ["schedule_interval", "next_run_at", "realtime"]}),
    ]

    def save_model(self, request, obj, form, change):
        fields = {name: form.cleaned_data[name] for name in configs.EDITABLE_FIELDS if name in form.cleaned_data}
        if change:
            configs.detector_update(detector=obj, **fields)
        else:
            name = fields.pop("name")
            saved = configs.detector_create(dataset=form.cleaned_data["dataset"], name=name, user=request.user,
                                            **fields)  # fmt: skip
            obj.pk = saved.pk
            obj._state.adding = False

    @admin.display(description="Plots")
    def plots(self, obj: Detector) -> str:
        if obj.pk is None:
            return "-"
        # With joint metrics an entity's incidents live on its lead: plot the leads.
        series_ids = [entity.lead for entity in detector_entities(detector=obj)][:PLOTTED_SERIES]
        if not series_ids:
            return "No series match this detector yet."
        svgs = []
        for series_id in series_ids:
            data = detector_plot_data(detector=obj, series_id=series_id)
            title = str(Series.objects.get(pk=series_id))
            svgs.append(line_svg(data.points, markers=data.markers, band=data.band, spans=data.spans, title=title))
        return mark_safe("".join(svgs))  # noqa: S308  (SVG rendered by our template, text escaped there)

    @admin.action(description="Run now (new points since the last run)", permissions=["change"])
    def run_now(self, request, queryset):
        for detector in queryset.select_related("dataset"):
            runs.run_enqueue(run=runs.run_create(detector=detector, trigger=RunTrigger.MANUAL, user=request.user))
        self.message_user(request, f"Queued {queryset.count()} run(s).", messages.SUCCESS)

    @admin.action(
        description="Backtest the whole history (nothing stored; see the run's result)", permissions=["change"]
    )
    def backtest_history(self, request, queryset):
        for detector in queryset.select_related("dataset"):
            runs.run_enqueue(run=runs.run_create(detector=detector, trigger=RunTrigger.BACKTEST, user=request.user))
        self.message_user(request, f"Queued {queryset.count()} backtest(s); results on the detection runs page.")

    @admin.action(description="Retrain models", permissions=["change"])
    def train_now(self, request, queryset):
        for detector in queryset:
            tasks.request_training(detector.pk)
        self.message_user(request, f"Queued training of {queryset.count()} detector(s).", messages.SUCCESS)


@admin.register(ModelVersion)
class ModelVersionAdmin(TeamScopedAdmin, LargeTableAdmin):
    team_field = "detector__dataset__team"
    list_display = ["detector", "series", "version", "status", "reason", "training_size", "threshold", "created_at"]
    list_filter = ["status", "reason", "algorithm"]
    list_select_related = ["detector", "series"]
    raw_id_fields = ["detector", "series"]
    search_fields = ["detector__name"]
    exclude = ["state"]
    readonly_fields = [f.name for f in ModelVersion._meta.fields if f.name not in ("state", "id")]
    actions = ["activate"]

    def has_add_permission(self, request) -> bool:
        return False

    @admin.action(description="Activate (rollback to this version)", permissions=["change"])
    def activate(self, request, queryset):
        for version in queryset.exclude(status=ModelStatus.ACTIVE):
            modelling.model_version_activate(version=version)
        self.message_user(request, "Activated; the previously active versions were retired.", messages.SUCCESS)


@admin.register(DetectionRun)
class DetectionRunAdmin(TeamScopedAdmin, LargeTableAdmin):
    team_field = "detector__dataset__team"
    list_display = ["id", "detector", "trigger", "status", "progress_percent", "points_scored", "anomalies_found",
                    "started_at", "finished_at"]  # fmt: skip
    list_filter = ["status", "trigger"]
    list_select_related = ["detector"]
    raw_id_fields = ["detector"]
    readonly_fields = [f.name for f in DetectionRun._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    @admin.display(description="Progress")
    def progress_percent(self, obj: DetectionRun) -> str:
        return format_html("{}%", round(100 * obj.progress))


@admin.register(Anomaly)
class AnomalyAdmin(TeamScopedAdmin, LargeTableAdmin):
    team_field = "detector__dataset__team"  # predicted incidents: through their forecast config (scope)
    list_display = ["start_ts", "kind", "detector", "forecast_config", "what", "status", "points", "severity",
                    "summary", "score_rounded", "review_status"]  # fmt: skip
    list_filter = ["kind", "status", "severity", "review_status", "detector"]
    list_select_related = ["detector", "forecast_config", "series"]
    raw_id_fields = ["detector", "series", "record", "model_version", "run", "forecast_config", "forecast"]
    date_hierarchy = None
    readonly_fields = ["start_ts", "end_ts", "peak_ts", "status", "closed_ts", "close_reason", "last_seen", "points",
                       "value", "expected", "lower", "upper", "score", "severity", "explanation", "model_version",
                       "run", "detector", "series", "record", "kind", "forecast_config", "forecast",
                       "direction"]  # fmt: skip

    def scope(self, request, queryset, *, writable: bool = False):
        if request.user.is_superuser:
            return queryset
        teams = self.team_ids(request, writable=writable)
        return queryset.filter(Q(detector__dataset__team__in=teams) | Q(forecast_config__dataset__team__in=teams))

    def team_id_of(self, obj: Anomaly) -> int:
        return (obj.detector or obj.forecast_config).dataset.team_id

    def has_add_permission(self, request) -> bool:
        return False

    @admin.display(description="Series or record")
    def what(self, obj: Anomaly) -> str:
        if not obj.series_id:
            return f"record {obj.record_id}"
        together = [m["metric"] for m in (obj.explanation or {}).get("series", [])[1:]]
        return f"{obj.series} with {', '.join(together)}" if together else str(obj.series)

    @admin.display(description="What happened")
    def summary(self, obj: Anomaly) -> str:
        return obj.explanation.get("text") or "-"

    @admin.display(description="Score", ordering="score")
    def score_rounded(self, obj: Anomaly) -> str:
        return f"{obj.score:.3f}"

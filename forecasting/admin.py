from django.contrib import admin, messages
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from forecasting.models import Forecast, ForecastConfig, ForecastCrossing, ForecastModelVersion, ForecastRun, RunTrigger
from forecasting.selectors import config_accuracy, forecast_plot_data, latest_forecast
from forecasting.services import configs, runs
from ingestion.admin import LargeTableAdmin
from ingestion.plots import line_svg
from teams.admin_scoping import TeamScopedAdmin

PLOTTED_SERIES = 3


def _plot(forecast: Forecast) -> str:
    """History and forecast as one line (the pen lifts between them) over the widest level's band."""
    data = forecast_plot_data(forecast=forecast)
    level = max(forecast.levels) if forecast.levels else ""
    title = f"{forecast.series}: forecast from {forecast.trained_until:%Y-%m-%d %H:%M} UTC, {level} % band"
    gap = [(ts, None) for ts, _ in data.forecast[:1]]
    return line_svg([*data.points, *gap, *data.forecast], band=data.band, title=title)


def _coverage_text(coverage: dict) -> str:
    return ", ".join(f"{lv} %: {share:.3f}" for lv, share in sorted(coverage.items(), key=lambda i: int(i[0]))) or "-"


def _accuracy_table(config: ForecastConfig) -> str:
    rows = config_accuracy(config=config)
    if not rows:
        return "No forecasts yet."

    def fmt(value, digits=3):
        return "-" if value is None else f"{value:.{digits}f}"

    body = format_html_join(
        "",
        "<tr><td>v{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        (
            (
                r["version"], r["method"], r["forecasts"], r["points_realised"], fmt(r["smape"]), fmt(r["mase"]),
                _coverage_text(r["coverage"]),
            )
            for r in rows
        ),
    )  # fmt: skip
    head = (
        "<tr><th>version</th><th>method</th><th>forecasts</th><th>points with actuals</th><th>sMAPE %</th>"
        "<th>MASE</th><th>coverage</th></tr>"
    )
    return format_html("<table>{}{}</table>", mark_safe(head), body)  # noqa: S308


@admin.register(ForecastConfig)
class ForecastConfigAdmin(TeamScopedAdmin, admin.ModelAdmin):
    team_field = "dataset__team"
    list_display = ["name", "dataset", "method", "horizon", "schedule_interval", "next_run_at", "enabled"]
    list_filter = ["method", "enabled", "dataset__team"]
    list_select_related = ["dataset"]
    search_fields = ["name", "dataset__name", "metric"]
    readonly_fields = ["next_run_at", "accuracy", "plots", "created_at", "updated_at"]
    actions = ["run_now"]
    fieldsets = [
        (None, {"fields": ["dataset", "name", "enabled"]}),
        ("Realised accuracy per model version", {"fields": ["accuracy"]}),
        ("Latest forecasts", {"fields": ["plots"]}),
        ("What to forecast", {"fields": ["metric", "label_filter"]}),
        ("How", {"fields": ["method", "params", "horizon", "levels", "training_points"]}),
        ("When", {"fields": ["schedule_interval", "next_run_at"]}),
        ("Predicted crossings", {"fields": ["threshold_above", "threshold_below", "threshold_level"]}),
    ]

    def save_model(self, request, obj, form, change):
        fields = {name: form.cleaned_data[name] for name in configs.EDITABLE_FIELDS if name in form.cleaned_data}
        if change:
            configs.forecast_config_update(config=obj, **fields)
        else:
            name = fields.pop("name")
            saved = configs.forecast_config_create(dataset=form.cleaned_data["dataset"], name=name, user=request.user,
                                                   **fields)  # fmt: skip
            obj.pk = saved.pk
            obj._state.adding = False

    @admin.display(description="Accuracy")
    def accuracy(self, obj: ForecastConfig) -> str:
        return "-" if obj.pk is None else _accuracy_table(obj)

    @admin.display(description="Plots")
    def plots(self, obj: ForecastConfig) -> str:
        if obj.pk is None:
            return "-"
        series_ids = list(obj.forecasts.order_by("series_id").values_list("series_id", flat=True).distinct())
        svgs = []
        for series_id in series_ids[:PLOTTED_SERIES]:
            forecast = latest_forecast(series_id=series_id, config_id=obj.pk)
            if forecast is not None:
                svgs.append(_plot(forecast))
        return mark_safe("".join(svgs)) if svgs else "No forecasts yet."  # noqa: S308  (escaped by the template)

    @admin.action(description="Forecast now", permissions=["change"])
    def run_now(self, request, queryset):
        for config in queryset.select_related("dataset"):
            runs.run_enqueue(run=runs.run_create(config=config, trigger=RunTrigger.MANUAL, user=request.user))
        self.message_user(request, f"Queued {queryset.count()} run(s).", messages.SUCCESS)


@admin.register(ForecastModelVersion)
class ForecastModelVersionAdmin(TeamScopedAdmin, admin.ModelAdmin):
    team_field = "config__dataset__team"
    list_display = ["config", "version", "method", "created_at"]
    list_filter = ["method"]
    list_select_related = ["config"]
    readonly_fields = ["config", "version", "method", "params", "accuracy", "created_at"]

    def has_add_permission(self, request) -> bool:
        return False

    @admin.display(description="Realised accuracy")
    def accuracy(self, obj: ForecastModelVersion) -> str:
        rows = [r for r in config_accuracy(config=obj.config) if r["model_version"] == obj.pk]
        if not rows or not rows[0]["points_realised"]:
            return "No actuals yet."
        r = rows[0]
        return format_html(
            "sMAPE {} %, MASE {}, coverage {} over {} points of {} forecasts",
            f"{r['smape']:.3f}",
            f"{r['mase']:.3f}",
            _coverage_text(r["coverage"]),
            r["points_realised"],
            r["forecasts_realised"],
        )


@admin.register(ForecastRun)
class ForecastRunAdmin(TeamScopedAdmin, LargeTableAdmin):
    team_field = "config__dataset__team"
    list_display = ["id", "config", "trigger", "status", "progress_percent", "forecasts_made", "started_at",
                    "finished_at"]  # fmt: skip
    list_filter = ["status", "trigger"]
    list_select_related = ["config"]
    raw_id_fields = ["config"]
    readonly_fields = [f.name for f in ForecastRun._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    @admin.display(description="Progress")
    def progress_percent(self, obj: ForecastRun) -> str:
        return format_html("{}%", round(100 * obj.progress))


@admin.register(Forecast)
class ForecastAdmin(TeamScopedAdmin, LargeTableAdmin):
    team_field = "config__dataset__team"
    list_display = ["trained_until", "config", "series", "horizon", "points_realised", "smape_shown", "mase_shown",
                    "coverage"]  # fmt: skip
    list_filter = ["config"]
    list_select_related = ["config", "series"]
    raw_id_fields = ["config", "series", "model_version", "run"]
    exclude = ["detail"]
    readonly_fields = ["plot", *[f.name for f in Forecast._meta.fields if f.name not in ("id", "detail")], "chosen"]

    def has_add_permission(self, request) -> bool:
        return False

    @admin.display(description="History, forecast and bands")
    def plot(self, obj: Forecast) -> str:
        return mark_safe(_plot(obj)) if obj.pk else "-"  # noqa: S308  (escaped by the template)

    @admin.display(description="Method's choice")
    def chosen(self, obj: Forecast) -> str:
        return ", ".join(obj.detail.get("chosen", [])) or "-"

    @admin.display(description="sMAPE %", ordering="smape")
    def smape_shown(self, obj: Forecast) -> str:
        return "-" if obj.smape is None else f"{obj.smape:.3f}"

    @admin.display(description="MASE", ordering="mase")
    def mase_shown(self, obj: Forecast) -> str:
        return "-" if obj.mase is None else f"{obj.mase:.3f}"


@admin.register(ForecastCrossing)
class ForecastCrossingAdmin(TeamScopedAdmin, LargeTableAdmin):
    team_field = "config__dataset__team"
    list_display = ["bound_crosses_at", "mean_crosses_at", "series", "direction", "threshold", "level", "config"]
    list_filter = ["direction", "config"]
    list_select_related = ["config", "series"]
    raw_id_fields = ["forecast", "config", "series"]
    readonly_fields = [f.name for f in ForecastCrossing._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

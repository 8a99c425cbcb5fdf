"""Admin for datasets, series, upload batches and records.

Points are not registered: their composite primary key is beyond the admin, and the series page plots them.
Tables that grow without bound use `EstimatedCountPaginator`, so no changelist runs COUNT(*) over them.
Every admin is team-scoped (`teams.admin_scoping.TeamScopedAdmin`): staff see and change only their teams' rows.
"""

from __future__ import annotations

from django.contrib import admin
from django.core.paginator import Paginator
from django.db import connection
from django.db.models import Count, Sum
from django.urls import reverse
from django.utils.functional import cached_property
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django.utils.text import capfirst

from ingestion import plots, selectors
from ingestion.models import Dataset, IngestBatch, Point, Record, Series
from teams.admin_scoping import TeamScopedAdmin

PLOT_POINTS = 2000


class EstimatedCountPaginator(Paginator):
    """Counts without scanning: the planner's row estimate when unfiltered, else a count capped at `cap` rows.

    As in healthchecks' admin for its pings table; pair it with `show_full_result_count = False`.
    """

    cap = 10_000

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        if not queryset.query.where:
            estimate = _estimated_rows(queryset.model._meta.db_table)
            if estimate > self.cap:
                return estimate
        return queryset.order_by()[: self.cap + 1].count()


def _estimated_rows(table: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(%s)", [table])
        row = cursor.fetchone()
    return int(row[0]) if row and row[0] is not None else -1


class LargeTableAdmin(admin.ModelAdmin):
    paginator = EstimatedCountPaginator
    show_full_result_count = False


class CountedDeleteMixin:
    """A delete confirmation that counts what goes, from the counters, instead of listing every point.

    Django's default loads each related row into memory to list it: millions of points for one series.
    """

    def get_deleted_objects(self, objs, request):
        objs = list(objs)
        counts = self.cascade_counts(objs)
        perms_needed = {
            model._meta.verbose_name
            for model in self.cascade_models
            if not request.user.has_perm(f"{model._meta.app_label}.delete_{model._meta.model_name}")
        }
        deleted = [format_html("{}: {}", capfirst(self.model._meta.verbose_name), obj) for obj in objs]
        return deleted, {name: count for name, count in counts.items() if count}, perms_needed, []


@admin.register(Dataset)
class DatasetAdmin(TeamScopedAdmin, CountedDeleteMixin, admin.ModelAdmin):
    list_display = ["name", "team", "kind", "series_count", "duplicate_policy", "created_at"]
    list_filter = ["kind", "duplicate_policy", "team"]
    list_select_related = ["team"]
    search_fields = ["name", "team__name", "team__slug"]
    raw_id_fields = ["created_by"]
    readonly_fields = ["summary", "created_at", "updated_at"]

    cascade_models = [Dataset, Series, Point, Record, IngestBatch]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_series_count=Count("series"))

    def cascade_counts(self, objs: list[Dataset]) -> dict[str, int]:
        series = Series.objects.filter(dataset__in=objs).aggregate(n=Count("id"), points=Sum("point_count"))
        return {
            "datasets": len(objs),
            "series": series["n"],
            "points": series["points"] or 0,
            "records": Record.objects.filter(dataset__in=objs).count(),
            "ingest batches": IngestBatch.objects.filter(dataset__in=objs).count(),
        }

    @admin.display(description="series", ordering="_series_count")
    def series_count(self, obj: Dataset) -> str:
        url = reverse("admin:ingestion_series_changelist") + f"?dataset__id__exact={obj.pk}"
        return format_html('<a href="{}">{}</a>', url, obj._series_count)

    @admin.display(description="summary")
    def summary(self, obj: Dataset) -> str:
        if obj.pk is None:
            return "-"
        summary = selectors.dataset_summary(dataset=obj)
        rows = [(key.replace("_", " "), "-" if value is None else value) for key, value in summary.items()]
        return format_html("<table>{}</table>", format_html_join("", "<tr><th>{}</th><td>{}</td></tr>", rows[3:]))


@admin.register(Series)
class SeriesAdmin(TeamScopedAdmin, CountedDeleteMixin, LargeTableAdmin):
    team_field = "dataset__team"
    list_display = ["__str__", "dataset", "team", "point_count", "first_ts", "last_ts"]
    list_filter = ["dataset__kind", "dataset__team"]
    list_select_related = ["dataset", "dataset__team"]
    search_fields = ["metric", "dataset__name"]
    raw_id_fields = ["dataset"]
    readonly_fields = ["plot", "point_count", "first_ts", "last_ts", "created_at", "updated_at"]
    fields = ["dataset", "metric", "labels", "plot", "point_count", "first_ts", "last_ts", "created_at", "updated_at"]

    cascade_models = [Series, Point]

    def cascade_counts(self, objs: list[Series]) -> dict[str, int]:
        return {"series": len(objs), "points": sum(obj.point_count for obj in objs)}

    @admin.display(description="team", ordering="dataset__team__name")
    def team(self, obj: Series) -> str:
        return str(obj.dataset.team)

    @admin.display(description=f"latest {PLOT_POINTS} points")
    def plot(self, obj: Series) -> str:
        if obj.pk is None:
            return "-"
        points = selectors.series_recent_points(series=obj, limit=PLOT_POINTS)
        return mark_safe(plots.line_svg(points, title=str(obj)))  # escaped by the plot's template


@admin.register(IngestBatch)
class IngestBatchAdmin(TeamScopedAdmin, LargeTableAdmin):
    team_field = "dataset__team"
    list_display = [
        "id",
        "dataset",
        "target",
        "source",
        "status",
        "received",
        "inserted",
        "updated",
        "duplicate",
        "rejected",
        "created_at",
    ]
    list_filter = ["status", "source", "target", "dataset"]
    list_select_related = ["dataset"]
    search_fields = ["filename", "dataset__name"]
    raw_id_fields = ["dataset", "created_by"]
    fields = [
        "dataset",
        "target",
        "source",
        "mode",
        "status",
        "filename",
        "content_type",
        "size_bytes",
        "labels",
        ("received", "inserted", "updated", "duplicate", "rejected"),
        "error_table",
        "message",
        "created_by",
        ("created_at", "started_at", "finished_at"),
    ]
    # Batches are records of what happened: view-only (no change permission), so every field shows as text.
    readonly_fields = ["error_table"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="errors")
    def error_table(self, obj: IngestBatch) -> str:
        errors = obj.errors or []
        if not errors:
            return "None"
        rows = [_error_row(error) for error in errors]
        shown = format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td></tr>", rows)
        more = obj.rejected - len(errors)
        footer = format_html("<p>…and {} more rejected rows not listed.</p>", more) if more > 0 else ""
        return format_html(
            "<table><thead><tr><th>row</th><th>field</th><th>message</th></tr></thead><tbody>{}</tbody></table>{}",
            shown,
            footer,
        )


def _error_row(error) -> tuple[str, str, str]:
    if not isinstance(error, dict):
        return "", "", str(error)
    return (
        "" if error.get("row") is None else str(error["row"]),
        str(error.get("field") or ""),
        str(error.get("message") or error.get("error") or ""),
    )


@admin.register(Record)
class RecordAdmin(TeamScopedAdmin, LargeTableAdmin):
    team_field = "dataset__team"
    list_display = ["id", "external_id", "dataset", "ts", "created_at"]
    list_select_related = ["dataset"]
    search_fields = ["=external_id"]
    raw_id_fields = ["dataset"]
    readonly_fields = ["created_at", "updated_at"]

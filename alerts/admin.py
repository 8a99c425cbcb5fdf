from django import forms
from django.contrib import admin, messages

from alerts.channels.registry import get_channel
from alerts.models import Alert, AlertRule, Channel, DeliveryAttempt, Notification
from alerts.services import configs
from common.exceptions import ApplicationError
from ingestion.admin import LargeTableAdmin
from teams.admin_scoping import TeamScopedAdmin


def _errors_to_form(form: forms.Form, exc: ApplicationError, fields: dict[str, str]) -> None:
    """Put a service's field errors on the form's fields (`fields` maps error keys to form fields)."""
    placed = False
    for key, value in exc.extra.items():
        messages_ = value if isinstance(value, list) else [f"{k}: {'; '.join(v)}" for k, v in value.items()]
        target = fields.get(key, key if key in form.fields else None)
        for message in messages_:
            form.add_error(target, message)
            placed = True
    if not placed:
        form.add_error(None, exc.message)


class ChannelForm(forms.ModelForm):
    secrets_input = forms.JSONField(
        label="Secrets", required=False, widget=forms.Textarea(attrs={"rows": 3}),
        help_text='Write-only: never shown again once saved. A JSON object, e.g. {"secret": "..."}; keys left '
        "out keep their value.",
    )  # fmt: skip

    class Meta:
        model = Channel
        fields = ["team", "name", "kind", "config", "enabled"]

    def clean(self):
        data = super().clean()
        kind = self.instance.kind if self.instance.pk else data.get("kind")
        if kind and not self.errors:
            secrets = {**(self.instance.secrets or {}), **(data.get("secrets_input") or {})}
            try:
                data["config"], data["secrets"] = configs.channel_validate(
                    kind=kind, config=data.get("config") or {}, secrets=secrets
                )
            except ApplicationError as exc:
                _errors_to_form(self, exc, {"config": "config", "secrets": "secrets_input", "kind": "kind"})
        return data


@admin.register(Channel)
class ChannelAdmin(TeamScopedAdmin, admin.ModelAdmin):
    form = ChannelForm
    list_display = ["name", "kind", "team", "enabled", "disabled_reason", "last_sent_at"]
    list_filter = ["kind", "enabled", "team"]
    search_fields = ["name"]
    readonly_fields = ["secrets_set", "disabled_reason", "disabled_at", "last_sent_at", "created_at", "updated_at"]
    actions = ["send_test", "enable"]

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        return [*fields, "team", "kind"] if obj is not None else fields

    def get_fields(self, request, obj=None):
        return ["team", "name", "kind", "config", "secrets_input", "secrets_set", "enabled", "disabled_reason",
                "disabled_at", "last_sent_at"]  # fmt: skip

    @admin.display(description="Secrets set")
    def secrets_set(self, obj: Channel) -> str:
        if obj.pk is None:
            return "-"
        names = [name for name in get_channel(obj.kind).secret_fields() if obj.secrets.get(name)]
        return ", ".join(names) or "none"

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        if change:
            configs.channel_update(channel=obj, name=data["name"], config=data["config"], secrets=data["secrets"],
                                   enabled=data["enabled"])  # fmt: skip
        else:
            saved = configs.channel_create(team=data["team"], name=data["name"], kind=data["kind"],
                                           config=data["config"], secrets=data["secrets"], enabled=data["enabled"],
                                           user=request.user)  # fmt: skip
            obj.pk, obj._state.adding = saved.pk, False

    @admin.action(description="Send a test message")
    def send_test(self, request, queryset):
        for channel in queryset:
            notification = configs.channel_send_test(channel=channel)
            self.message_user(request, f"Test message {notification.pk} queued for {channel}; see Notifications.")

    @admin.action(description="Enable again (clears the failure reason)")
    def enable(self, request, queryset):
        for channel in queryset.filter(enabled=False):
            configs.channel_update(channel=channel, enabled=True)
        self.message_user(request, "Enabled.", messages.SUCCESS)


class AlertRuleForm(forms.ModelForm):
    class Meta:
        model = AlertRule
        fields = [
            "team", "name", "enabled", "detectors", "datasets", "forecast_configs", "channels", "min_severity",
            "min_deviation", "cooldown", "grouping_window", "quiet_start", "quiet_end", "timezone",
            "notify_on_resolve", "skip_false_positives",
        ]  # fmt: skip

    def clean(self):
        data = super().clean()
        team = data.get("team") or getattr(self.instance, "team", None)
        if team is not None and not self.errors:
            related = {f: data.get(f) or [] for f in (*configs.RULE_SOURCES, "channels")}
            try:
                configs.rule_check_team(team_id=team.pk, related=related)
                configs.rule_check(rule=AlertRule(team=team, **{
                    k: v for k, v in data.items() if k not in related and k != "team"
                }))  # fmt: skip
            except ApplicationError as exc:
                _errors_to_form(self, exc, {})
        return data


@admin.register(AlertRule)
class AlertRuleAdmin(TeamScopedAdmin, admin.ModelAdmin):
    form = AlertRuleForm
    list_display = ["name", "team", "min_severity", "cooldown", "grouping_window", "notify_on_resolve", "enabled"]
    list_filter = ["enabled", "min_severity", "team"]
    search_fields = ["name"]
    filter_horizontal = ["detectors", "datasets", "forecast_configs", "channels"]

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        queryset = self.related_queryset(request, db_field.related_model, writable=True)
        if queryset is not None:
            kwargs["queryset"] = queryset
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    def save_model(self, request, obj, form, change):
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)


@admin.register(Alert)
class AlertAdmin(TeamScopedAdmin, LargeTableAdmin):
    team_field = "rule__team"
    list_display = ["first_seen", "rule", "detector", "forecast_config", "status", "severity", "count",
                    "suppressed_reason"]  # fmt: skip
    list_filter = ["status", "severity", "rule"]
    list_select_related = ["rule", "detector", "forecast_config"]
    raw_id_fields = ["rule", "detector", "forecast_config"]
    readonly_fields = ["rule", "detector", "forecast_config", "status", "suppressed_reason", "severity", "count",
                       "first_seen", "last_seen", "group_until", "resolved_at", "incident_ids"]  # fmt: skip
    exclude = ["incidents"]

    def has_add_permission(self, request) -> bool:
        return False

    @admin.display(description="Incidents")
    def incident_ids(self, obj: Alert) -> str:
        return ", ".join(str(pk) for pk in obj.incidents.values_list("pk", flat=True)[:100])


class DeliveryAttemptInline(admin.TabularInline):
    model = DeliveryAttempt
    extra = 0
    can_delete = False
    fields = readonly_fields = ["number", "status", "started_at", "latency_ms", "http_status", "error", "worker"]

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Notification)
class NotificationAdmin(TeamScopedAdmin, LargeTableAdmin):
    team_field = "channel__team"
    list_display = ["created_at", "event", "alert", "channel", "status", "attempts", "sent_at", "error"]
    list_filter = ["status", "event", "channel"]
    list_select_related = ["channel"]
    readonly_fields = ["alert", "channel", "event", "status", "not_before", "claimed_until", "enqueued_at",
                       "attempts", "sent_at", "error"]  # fmt: skip
    inlines = [DeliveryAttemptInline]

    def has_add_permission(self, request) -> bool:
        return False

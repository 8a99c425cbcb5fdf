from django import forms
from django.conf import settings
from django.contrib import admin, messages

from common.exceptions import ApplicationError
from teams import services
from teams.admin_scoping import TEAM_ADMIN_ROLES, TeamScopedAdmin, forget_team_roles, team_roles
from teams.models import ApiToken, Membership, Team, TokenScope


class MembershipInline(admin.TabularInline):
    """A team's members, on its page: adding, changing and removing them needs the admin role in that team."""

    model = Membership
    extra = 1
    raw_id_fields = ["user"]

    # For inlines, `obj` is the team being edited (None on the add page).
    def has_add_permission(self, request, obj) -> bool:
        return super().has_add_permission(request, obj) and _is_team_admin(request, obj)

    def has_change_permission(self, request, obj=None) -> bool:
        return super().has_change_permission(request, obj) and _is_team_admin(request, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        return super().has_delete_permission(request, obj) and _is_team_admin(request, obj)


def _is_team_admin(request, team: Team | None) -> bool:
    if request.user.is_superuser:
        return True
    return team is not None and team_roles(request).get(team.pk) in TEAM_ADMIN_ROLES


@admin.register(Team)
class TeamAdmin(TeamScopedAdmin, admin.ModelAdmin):
    """Staff see their teams; editing one needs the admin role in it. Whoever creates a team becomes its admin."""

    team_field = "pk"
    write_roles = TEAM_ADMIN_ROLES
    list_display = ["name", "slug", "created_at"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [MembershipInline]

    def may_add(self, request) -> bool:
        return True  # a new team is nobody's yet; Django's add permission decides

    def get_inlines(self, request, obj):
        if obj is None and not request.user.is_superuser:
            return []  # members are added once the team exists, by its admin: its creator
        return super().get_inlines(request, obj)

    def save_model(self, request, obj, form, change):
        if change or request.user.is_superuser:
            return super().save_model(request, obj, form, change)
        team = services.team_create(name=obj.name, slug=obj.slug, owner=request.user)
        for field in Team._meta.concrete_fields:
            setattr(obj, field.attname, getattr(team, field.attname))
        obj._state.adding, obj._state.db = False, team._state.db
        forget_team_roles(request)


@admin.register(Membership)
class MembershipAdmin(TeamScopedAdmin, admin.ModelAdmin):
    """Memberships of the user's teams; adding, changing or removing one needs the admin role in its team."""

    write_roles = TEAM_ADMIN_ROLES
    list_display = ["user", "team", "role", "created_at"]
    list_filter = ["role", "team"]
    list_select_related = ["user", "team"]
    raw_id_fields = ["user"]
    search_fields = ["user__username", "team__name"]


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Tokens are created only for oneself; after creation only the name changes (revoking is an action).

    Superusers see every token, to revoke them; other staff see only their own.
    """

    class AddForm(forms.ModelForm):
        class Meta:
            model = ApiToken
            fields = ["name", "scope", "expires_at"]

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.fields["scope"].initial = TokenScope.WRITE
            self.fields["expires_at"].required = False
            self.fields["expires_at"].help_text = (
                f"Empty: {settings.API_TOKEN_DEFAULT_TTL_DAYS} days from now. "
                f"At most {settings.API_TOKEN_MAX_TTL_DAYS} days from now."
            )

        def clean_expires_at(self):
            expires_at = self.cleaned_data.get("expires_at")
            if expires_at is not None:
                try:
                    services.api_token_check_expiry(expires_at=expires_at)
                except ApplicationError as exc:
                    raise forms.ValidationError(exc.message) from exc
            return expires_at

    add_fields = ["name", "scope", "expires_at"]
    change_fields = [
        "name",
        "user",
        "scope",
        "expires_at",
        "parent",
        "prefix",
        "created_at",
        "last_used_at",
        "revoked_at",
    ]
    list_display = ["name", "user", "prefix", "scope", "created_at", "expires_at", "last_used_at", "revoked_at"]
    list_filter = ["scope", "revoked_at"]
    list_select_related = ["user"]
    search_fields = ["name", "prefix", "user__username"]
    actions = ["revoke"]

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        return queryset if request.user.is_superuser else queryset.filter(user=request.user)

    def get_fields(self, request, obj=None):
        return self.add_fields if obj is None else self.change_fields

    def get_readonly_fields(self, request, obj=None):
        # Everything but the name is fixed at creation: nobody reassigns a token or clears revoked_at.
        return [] if obj is None else [f for f in self.change_fields if f != "name"]

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = self.AddForm
        return super().get_form(request, obj, **kwargs)

    def save_model(self, request, obj, form, change):
        if change:
            obj.save(update_fields=["name", "updated_at"])
            return
        issued = services.api_token_create(
            user=request.user,
            name=form.cleaned_data["name"],
            scope=form.cleaned_data["scope"],
            expires_at=form.cleaned_data.get("expires_at"),
        )
        obj.__dict__.update({k: v for k, v in issued.token.__dict__.items() if k != "_state"})
        obj._state.adding = False
        self.message_user(
            request, f"Token created. Copy it now, it will not be shown again: {issued.key}", messages.WARNING
        )

    @admin.action(description="Revoke selected tokens (and the tokens they created)")
    def revoke(self, request, queryset):
        for token in queryset:
            services.api_token_revoke(token=token)
        self.message_user(request, f"Revoked {len(queryset)} token(s) and their descendants.", messages.SUCCESS)

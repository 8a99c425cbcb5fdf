"""Team scoping for Django admin: the admin's counterpart of the API's `teams.permissions.TeamScopedMixin`.

A staff user who is not a superuser sees only the rows of their teams: other teams' rows are absent from
changelists, list filters and foreign-key choices, and their pages behave as "does not exist". Adding,
changing, deleting and running actions need a write role in the row's team (`write_roles`), on top of the
Django model permissions. Superusers see and change everything.
"""

from __future__ import annotations

import functools

from django.contrib import admin, messages
from django.contrib.admin import widgets
from django.contrib.admin.exceptions import NotRegistered
from django.contrib.admin.utils import get_fields_from_path
from django.core.exceptions import ValidationError
from django.db.models import Model, QuerySet

from teams.models import WRITE_ROLES, Membership, Role
from teams.selectors import team_ids_for_user

# Managing a team itself (its name, its members) needs more than writing its data.
TEAM_ADMIN_ROLES = (Role.ADMIN,)


def team_roles(request) -> dict[int, str]:
    """{team id: role} of the request's user; one query per request."""
    if not hasattr(request, "_team_roles"):
        request._team_roles = dict(Membership.objects.filter(user=request.user).values_list("team_id", "role"))
    return request._team_roles


def forget_team_roles(request) -> None:
    """Call after changing the user's memberships within the request."""
    request.__dict__.pop("_team_roles", None)


class TeamScopedRelatedFilter(admin.RelatedFieldListFilter):
    """A related-field filter that lists only related rows of the user's teams.

    Its choices come from the related model's scoped admin (not from the listed rows), so large tables
    are not scanned to build the sidebar.
    """

    def field_choices(self, field, request, model_admin):
        related = model_admin.related_queryset(request, field.related_model, writable=False)
        if related is None:
            return super().field_choices(field, request, model_admin)
        ordering = self.field_admin_ordering(field, request, model_admin)
        return field.get_choices(include_blank=False, ordering=ordering, limit_choices_to={"pk__in": related})


class TeamScopedRawIdWidget(widgets.ForeignKeyRawIdWidget):
    """A raw-id input that names the chosen row only if it is in `queryset`.

    Django's widget names whatever id was typed, even one the form then rejects: another team's row.
    """

    def __init__(self, rel, admin_site, *, queryset: QuerySet, **kwargs):
        super().__init__(rel, admin_site, **kwargs)
        self.queryset = queryset

    def label_and_url_for_value(self, value):
        try:
            allowed = self.queryset.filter(**{self.rel.get_related_field().name: value}).exists()
        except (ValueError, ValidationError):
            allowed = False
        return super().label_and_url_for_value(value) if allowed else ("", "")


class TeamScopedAdmin:
    """Mix into a ModelAdmin (before it) and set `team_field`, the lookup path from the model to its Team."""

    team_field = "team"
    write_roles: tuple[str, ...] = tuple(WRITE_ROLES)

    def team_ids(self, request, *, writable: bool) -> QuerySet:
        """A subquery of the user's team ids: all of them, or those where their role is in `write_roles`."""
        team_ids = team_ids_for_user(user=request.user)
        return team_ids.filter(role__in=self.write_roles) if writable else team_ids

    def scope(self, request, queryset: QuerySet, *, writable: bool = False) -> QuerySet:
        if request.user.is_superuser:
            return queryset
        return queryset.filter(**{f"{self.team_field}__in": self.team_ids(request, writable=writable)})

    def team_id_of(self, obj: Model) -> int:
        *path, last = self.team_field.split("__")
        for part in path:
            obj = getattr(obj, part)
        return obj.pk if last == "pk" else getattr(obj, f"{last}_id")

    def may_write(self, request, obj: Model | None = None) -> bool:
        """Whether the user may write `obj`, or, without one, rows of at least one of their teams."""
        if request.user.is_superuser:
            return True
        roles = team_roles(request)
        if obj is None:
            return any(role in self.write_roles for role in roles.values())
        return roles.get(self.team_id_of(obj)) in self.write_roles

    def related_queryset(self, request, model: type[Model], *, writable: bool) -> QuerySet | None:
        """Rows of `model` in the user's (writable) teams, through its own admin's `team_field`.

        None when `model` is not team-scoped (users, ...) or when the user is a superuser.
        """
        try:
            related_admin = self.admin_site.get_model_admin(model)
        except NotRegistered:
            return None
        if request.user.is_superuser or not isinstance(related_admin, TeamScopedAdmin):
            return None
        team_ids = self.team_ids(request, writable=writable)
        queryset = model._default_manager.filter(**{f"{related_admin.team_field}__in": team_ids})
        return queryset.order_by(*related_admin.get_ordering(request) or model._meta.ordering)

    def may_add(self, request) -> bool:
        return self.may_write(request)

    def get_queryset(self, request):
        return self.scope(request, super().get_queryset(request))

    def has_add_permission(self, request) -> bool:
        return super().has_add_permission(request) and self.may_add(request)

    def has_change_permission(self, request, obj=None) -> bool:
        return super().has_change_permission(request, obj) and self.may_write(request, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        return super().has_delete_permission(request, obj) and self.may_write(request, obj)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        # Also what raw_id_fields validate against: an id of another team's row is "not a valid choice".
        if "queryset" not in kwargs:
            queryset = self.related_queryset(request, db_field.related_model, writable=True)
            if queryset is not None:
                kwargs["queryset"] = queryset
                if db_field.name in self.raw_id_fields and "widget" not in kwargs:
                    kwargs["widget"] = TeamScopedRawIdWidget(
                        db_field.remote_field, self.admin_site, queryset=queryset, using=kwargs.get("using")
                    )
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def get_list_filter(self, request):
        return [_scoped_filter(self.model, item) for item in super().get_list_filter(request)]

    def get_actions(self, request):
        actions = super().get_actions(request)
        if request.user.is_superuser:
            return actions
        return {name: (_on_writable_rows(func), name, description) for func, name, description in actions.values()}


def _scoped_filter(model: type[Model], item):
    if isinstance(item, str) and get_fields_from_path(model, item)[-1].is_relation:
        return item, TeamScopedRelatedFilter
    return item


def _on_writable_rows(func):
    """Wrap an admin action so it only gets the selected rows the user may write; the rest are reported."""

    @functools.wraps(func)
    def action(modeladmin, request, queryset):
        writable = modeladmin.scope(request, queryset, writable=True)
        selected, allowed = queryset.count(), writable.count()
        if selected > allowed:
            message = f"Skipped {selected - allowed} of {selected} selected: your role in their team is read-only."
            modeladmin.message_user(request, message, messages.WARNING)
        if allowed:
            return func(modeladmin, request, writable)
        return None

    return action

"""API filters that never list another team's objects.

django-filter's default for a foreign key is a choice of every row of the related table, rendered as
`<option>`s by the browsable API and validated against that table (so "no such id" and "another team's
id" answered differently). Here a related object is filtered by its id alone: no choices to render,
and any id outside the caller's (already team-scoped) queryset simply matches nothing.
"""

from __future__ import annotations

from datetime import UTC

from django import forms
from django.db import models
from django_filters import rest_framework as filters


class IdFilter(filters.NumberFilter):
    field_class = forms.IntegerField


class IdFilterSet(filters.FilterSet):
    FILTER_DEFAULTS = {
        **filters.FilterSet.FILTER_DEFAULTS,
        models.ForeignKey: {"filter_class": IdFilter},
        models.OneToOneField: {"filter_class": IdFilter},
    }


class IdFilterBackend(filters.DjangoFilterBackend):
    filterset_base = IdFilterSet

    def get_filterset_class(self, view, queryset=None):
        filterset_class = super().get_filterset_class(view, queryset)
        if filterset_class is not None and not issubclass(filterset_class, IdFilterSet):
            raise TypeError(f"{view.__class__.__name__}.filterset_class must derive from common.filters.IdFilterSet")
        return filterset_class


class UtcIsoDateTimeField(filters.IsoDateTimeFilter.field_class):
    """An ISO 8601 timestamp, turned to UTC: Python takes offsets up to 24 h, PostgreSQL only up to 16 h."""

    def to_python(self, value):
        value = super().to_python(value)
        if value is None:
            return None
        try:
            return value.astimezone(UTC)
        except OverflowError as exc:  # an offset that takes it past year 9999 or before year 1
            raise forms.ValidationError("Timestamp out of range.", code="invalid") from exc


class UtcIsoDateTimeFilter(filters.IsoDateTimeFilter):
    field_class = UtcIsoDateTimeField

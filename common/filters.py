"""API filters that never list another team's objects.

django-filter's default for a foreign key is a choice of every row of the related table, rendered as
`<option>`s by the browsable API and validated against that table (so "no such id" and "another team's
id" answered differently). Here a related object is filtered by its id alone: no choices to render,
and any id outside the caller's (already team-scoped) queryset simply matches nothing.
"""

from __future__ import annotations

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

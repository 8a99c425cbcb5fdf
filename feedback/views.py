"""The review queue's pages. Verdicts and missed ranges go through the REST API from the page's script
(session and CSRF); these views only read, hold (claim) and give back (skip) incidents."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_POST

from detectors.models import IncidentKind, ReviewStatus
from detectors.selectors import anomalies_for_user
from feedback.forms import QueueFilters
from feedback.selectors import review_items
from feedback.services.queue import anomaly_claim, claim_release, claims_held, queue_claim, queue_ordered
from teams.selectors import team_ids_for_user

PAGE_SIZE = 10
RELATED = ("detector__dataset", "series", "record", "model_version")


@login_required
def queue(request):
    """Claim a page of the queue for the user (or, for a viewer, show it without claiming)."""
    form = QueueFilters(request.GET, user=request.user)
    if not form.is_valid():
        return render(request, "feedback/queue.html", {"form": form, "items": []}, status=400)
    claiming = team_ids_for_user(user=request.user, writable=True).exists()
    if claiming:
        anomalies = queue_claim(user=request.user, limit=PAGE_SIZE, **form.filters())
    else:
        anomalies = list(queue_ordered(user=request.user, **form.filters()).select_related(*RELATED)[:PAGE_SIZE])
    context = {"form": form, "items": review_items(user=request.user, anomalies=anomalies), "claiming": claiming,
               "claim_minutes": settings.REVIEW_CLAIM_MINUTES}  # fmt: skip
    return render(request, "feedback/queue.html", context)


@login_required
def item(request, pk: int):
    """One incident (the page alerts link to); opening one that awaits a verdict holds it for the user."""
    anomaly = get_object_or_404(anomalies_for_user(user=request.user).select_related(*RELATED), pk=pk)
    [shown] = review_items(user=request.user, anomalies=[anomaly])
    awaiting = anomaly.kind == IncidentKind.OBSERVED and anomaly.review_status == ReviewStatus.UNREVIEWED
    claim = anomaly_claim(user=request.user, anomaly=anomaly) if shown.writable and awaiting else None
    held = claims_held(user=request.user)
    at = held.index(pk) if pk in held else -1
    context = {
        "item": shown,
        "held_by": claim.user if claim is not None and claim.user_id != request.user.pk else None,
        "previous": held[at - 1] if at > 0 else None,
        "next": held[at + 1] if at + 1 < len(held) else None,
    }
    return render(request, "feedback/item.html", context)


@login_required
@require_POST
def skip(request):
    """Give incidents back to the queue (`anomalies`: ids): the user's claims on them end."""
    try:
        ids = [int(value) for value in request.POST.getlist("anomalies")]
    except ValueError:
        return JsonResponse({"anomalies": ["Give incident ids (whole numbers)."]}, status=400)
    if not ids:
        return JsonResponse({"anomalies": ["This field is required."]}, status=400)
    return JsonResponse({"released": claim_release(user=request.user, anomaly_ids=ids)})

from django.urls import path
from rest_framework.routers import SimpleRouter

from feedback.api import views

router = SimpleRouter(trailing_slash=False)
router.register("labels", views.LabelViewSet, basename="label")
router.register("retrainings", views.RetrainingViewSet, basename="retraining")
router.register("audit-log", views.AuditLogViewSet, basename="audit-log")
urlpatterns = [
    path("anomalies/label", views.AnomalyBulkLabelView.as_view(), name="anomaly-label-bulk"),
    path("anomalies/<int:pk>/label", views.AnomalyLabelView.as_view(), name="anomaly-label"),
    path("series/<int:pk>/missed", views.SeriesMissedView.as_view(), name="series-missed"),
    *router.urls,
]

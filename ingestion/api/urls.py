from django.urls import path
from rest_framework.routers import SimpleRouter

from ingestion.api import read_views, views

router = SimpleRouter(trailing_slash=False)
router.register("datasets", views.DatasetViewSet, basename="dataset")
router.register("batches", views.IngestBatchViewSet, basename="batch")
router.register("series", read_views.SeriesViewSet, basename="series")

urlpatterns = [
    path("datasets/<int:pk>/points", views.PointsUploadView.as_view(), name="dataset-points"),
    path("datasets/<int:pk>/records", views.RecordsUploadView.as_view(), name="dataset-records"),
    *router.urls,
]

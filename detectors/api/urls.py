from rest_framework.routers import SimpleRouter

from detectors.api import views

router = SimpleRouter(trailing_slash=False)
router.register("detectors", views.DetectorViewSet, basename="detector")
router.register("runs", views.DetectionRunViewSet, basename="run")
router.register("anomalies", views.AnomalyViewSet, basename="anomaly")
router.register("model-versions", views.ModelVersionViewSet, basename="model-version")
urlpatterns = router.urls

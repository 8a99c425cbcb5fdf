from django.urls import path
from rest_framework.routers import SimpleRouter

from forecasting.api import views

router = SimpleRouter(trailing_slash=False)
router.register("forecast-configs", views.ForecastConfigViewSet, basename="forecast-config")
router.register("forecast-runs", views.ForecastRunViewSet, basename="forecast-run")
router.register("forecast-model-versions", views.ForecastModelVersionViewSet, basename="forecast-model-version")
router.register("forecasts", views.ForecastViewSet, basename="forecast")
router.register("forecast-crossings", views.ForecastCrossingViewSet, basename="forecast-crossing")

urlpatterns = [
    path("series/<int:pk>/forecast", views.SeriesForecastView.as_view(), name="series-forecast"),
    *router.urls,
]

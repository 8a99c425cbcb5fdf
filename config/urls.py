from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from common.throttling import throttle_login_failures
from config.health import health

admin.site.login = throttle_login_failures(admin.site.login)

api_v1 = [
    path("", include("teams.api.urls")),
    path("", include("ingestion.api.urls")),
    path("", include("feedback.api.urls")),  # before detectors': anomalies/label is not an anomaly id
    path("", include("detectors.api.urls")),
    path("", include("forecasting.api.urls")),
    path("", include("alerts.api.urls")),
]

urlpatterns = [
    path("health", health, name="health"),
    path("admin/", admin.site.urls),
    path("review/", include("feedback.urls")),
    # The review queue's login: any team member (the admin's login takes staff only).
    path("accounts/login/", throttle_login_failures(auth_views.LoginView.as_view()), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
]

from rest_framework.routers import SimpleRouter

from alerts.api import views

router = SimpleRouter(trailing_slash=False)
router.register("channels", views.ChannelViewSet, basename="channel")
router.register("alert-rules", views.AlertRuleViewSet, basename="alert-rule")
router.register("alerts", views.AlertViewSet, basename="alert")
router.register("notifications", views.NotificationViewSet, basename="notification")
urlpatterns = router.urls

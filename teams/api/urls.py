from rest_framework.routers import SimpleRouter

from teams.api.views import ApiTokenViewSet, TeamViewSet

router = SimpleRouter(trailing_slash=False)
router.register("teams", TeamViewSet, basename="team")
router.register("tokens", ApiTokenViewSet, basename="token")
urlpatterns = router.urls

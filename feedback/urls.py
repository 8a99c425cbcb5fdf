from django.urls import path

from feedback import views

urlpatterns = [
    path("", views.queue, name="review-queue"),
    path("<int:pk>/", views.item, name="review-item"),
    path("skip", views.skip, name="review-skip"),
]

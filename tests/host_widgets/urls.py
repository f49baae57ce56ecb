from django.urls import path

from . import views

urlpatterns = [
    path("plain", views.plain),
    path("async", views.asynchronous),
    path("drf", views.Drf.as_view()),
    path("ninja/", views.api.urls),
]

from __future__ import annotations

from django.urls import path

from audit import views

app_name = "audit"

urlpatterns = [
    path("checkpoint", views.latest_checkpoint, name="checkpoint"),
    path("checkpoint/key", views.log_key, name="key"),
    path("consistency/<int:old>/<int:new>", views.consistency, name="consistency"),
]

from __future__ import annotations

from django.urls import path

from releases import views

app_name = "releases"

urlpatterns = [
    path("", views.board, name="board"),
    path("releases/<str:name>/", views.release_detail, name="release"),
]

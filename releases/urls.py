from __future__ import annotations

from django.urls import path

from releases.views import pages

app_name = "releases"

urlpatterns = [
    path("", pages.board, name="board"),
    path("releases/<str:name>/", pages.release_detail, name="release"),
]

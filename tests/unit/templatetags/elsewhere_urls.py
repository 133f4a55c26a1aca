"""A second URL configuration whose ``releases:release`` lives elsewhere, for the remembered ``{% url %}``."""

from __future__ import annotations

from django.http import HttpResponse
from django.urls import include, path


def _page(request: object, name: str) -> HttpResponse:
    return HttpResponse(name)


urlpatterns = [path("elsewhere/", include(([path("r/<str:name>/", _page, name="release")], "releases")))]

from __future__ import annotations

from django.urls import path

from releases.views import actions, approvals, pages

app_name = "releases"

urlpatterns = [
    path("", pages.board, name="board"),
    path("releases/<str:name>/", pages.release_detail, name="release"),
    path("approvals/", approvals.approval_queue, name="approvals"),
    path("releases/<str:name>/sign/", approvals.sign, name="sign"),
    path("endpoints/<str:name>/rollback/", approvals.rollback, name="rollback"),
    path("endpoints/<str:name>/deploy/", actions.deploy, name="deploy"),
]

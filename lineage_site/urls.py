from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.urls import include, path

from releases.api import hooks

urlpatterns = [
    path("login/", auth_views.LoginView.as_view(), name="login"),
    # Anyone may log out, even someone whose roles were taken away.
    path("logout/", login_not_required(auth_views.LogoutView.as_view()), name="logout"),
    path("admin/", admin.site.urls),
    # Signed by MLflow with a shared secret, not by a user session.
    path("api/hooks/mlflow/", login_not_required(hooks.mlflow_webhook), name="mlflow_webhook"),
    path("api/", include("releases.api.urls")),
    # The signed checkpoints, public like a transparency log's (audit/views.py).
    path("audit/", include("audit.urls")),
    path("", include("releases.urls")),
]

# The database being unavailable is a 503 that says so (JSON under /api/); anything else, Django's plain 500.
handler500 = "releases.views.server_errors.server_error"

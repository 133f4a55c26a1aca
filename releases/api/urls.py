"""API routes. The views authenticate themselves (session or token), so the site's login redirect skips them."""

from __future__ import annotations

from csp.decorators import csp_update
from django.contrib.auth.decorators import login_not_required
from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from releases.api import views

app_name = "api"

# Swagger UI from this site's static files (drf-spectacular-sidecar), its start-up script served by the
# same view (?script) instead of inline, its style block moved to a stylesheet (templates/api/). It runs
# under the site's policy with one addition it cannot do without: its icons are data: SVG images.
# No script or style source is added: no inline code, no eval, nothing from another origin
# (tests/browser/test_csp.py opens an operation and the Authorize box under it).
API_DOCS_CSP = {"img-src": ["data:"]}
docs_page = csp_update(API_DOCS_CSP)(
    SpectacularSwaggerSplitView.as_view(url_name="api:schema", template_name="api/swagger_ui.html")
)
# The docs page is HTML for people: like every page, it sits behind the login page and the role check.
docs_page.login_required = True  # type: ignore[attr-defined]

urlpatterns = [
    path("dataset-versions/", login_not_required(views.DatasetVersionList.as_view()), name="dataset_versions"),
    path("releases/", login_not_required(views.ReleaseList.as_view()), name="releases"),
    path("releases/<str:name>/", login_not_required(views.ReleaseDetail.as_view()), name="release"),
    path("releases/<str:name>/submit/", login_not_required(views.ReleaseSubmit.as_view()), name="release_submit"),
    path("deployments/", login_not_required(views.DeploymentCreate.as_view()), name="deployments"),
    path("endpoints/", login_not_required(views.EndpointList.as_view()), name="endpoints"),
    path("endpoints/<str:name>/", login_not_required(views.EndpointDetail.as_view()), name="endpoint"),
    path("endpoints/<str:name>/rollback/", login_not_required(views.EndpointRollback.as_view()), name="rollback"),
    path("schema/", login_not_required(SpectacularAPIView.as_view()), name="schema"),
    path("docs/", docs_page, name="docs"),
]

"""The REST API for CI/CD and scripts. Each view parses, calls one lineage or service function, answers JSON."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from releases import lineage, services
from releases.api import schema as _schema  # noqa: F401 - registers the token scheme
from releases.api import serializers as s
from releases.api.permissions import require_scope
from releases.models import ApiToken, DatasetVersion, Deployment, Endpoint, Release
from releases.models.base import get_or_refuse
from releases.numbers import whole_number


def _release(name: str) -> Release:
    return get_or_refuse(Release.objects, "release", name=name)


def _endpoint(name: str) -> Endpoint:
    return get_or_refuse(Endpoint.objects, "endpoint", name=name)


def _limit(request: Request, most: int = 500) -> int:
    raw = request.query_params.get("limit", "")
    if not raw:
        return 100
    number = whole_number(raw, most=most)
    if not number:
        raise ValidationError({"limit": [f"a whole number from 1 to {most}"]})
    return number


class DatasetVersionList(APIView):
    """Dataset versions, newest first (``?dataset=`` narrows); register one with POST."""

    write_scope = ApiToken.Scope.DATASETS

    @extend_schema(
        responses=s.DatasetVersionOut(many=True),
        parameters=[OpenApiParameter("dataset", str), OpenApiParameter("limit", int)],
    )
    def get(self, request: Request) -> Response:
        versions = DatasetVersion.objects.select_related("dataset").order_by("-registered_at", "-pk")
        if name := request.query_params.get("dataset"):
            versions = versions.filter(dataset__name=name)
        return Response(s.DatasetVersionOut(versions[: _limit(request)], many=True).data)

    @extend_schema(request=s.DatasetVersionIn, responses={201: s.DatasetVersionOut, 200: s.DatasetVersionOut})
    def post(self, request: Request) -> Response:
        """Register an immutable dataset version: same content again is a no-op (200), different is 409."""
        data = s.DatasetVersionIn(data=request.data)
        data.is_valid(raise_exception=True)
        version, created = services.register_dataset_version(**data.validated_data, by=request.user)
        return Response(s.DatasetVersionOut(version).data, status=201 if created else 200)


class ReleaseList(APIView):
    """Releases, newest first, with lineage digest and completeness; create one with POST."""

    write_scope = ApiToken.Scope.RELEASES

    @extend_schema(
        responses=s.ReleaseSummaryOut(many=True),
        parameters=[OpenApiParameter("state", str, enum=Release.State.values), OpenApiParameter("limit", int)],
    )
    def get(self, request: Request) -> Response:
        releases = lineage.traced_releases().order_by("-created_at", "-pk")
        if state := request.query_params.get("state"):
            releases = releases.filter(state=state)
        traces = [lineage.Trace(r) for r in releases[: _limit(request)]]
        return Response(s.ReleaseSummaryOut(traces, many=True).data)

    @extend_schema(request=s.ReleaseIn, responses={201: s.TraceOut, 200: s.TraceOut})
    def post(self, request: Request) -> Response:
        data = s.ReleaseIn(data=request.data)
        data.is_valid(raise_exception=True)
        release, created = services.create_release(**data.validated_data, by=request.user)
        return Response(s.TraceOut(lineage.trace(release.name)).data, status=201 if created else 200)


class ReleaseDetail(APIView):
    """The full trace of one release: every link, its digest, completeness, approvals, deployments."""

    @extend_schema(responses=s.TraceOut)
    def get(self, request: Request, name: str) -> Response:
        return Response(s.TraceOut(lineage.trace(name)).data)


class ReleaseSubmit(APIView):
    """Submit a draft (or rejected) release for approval; freezes its lineage digest."""

    write_scope = ApiToken.Scope.RELEASES

    @extend_schema(request=None, responses=s.TraceOut)
    def post(self, request: Request, name: str) -> Response:
        services.submit_release(_release(name), by=request.user)
        return Response(s.TraceOut(lineage.trace(name)).data)


class DeploymentCreate(APIView):
    """Record that a release went live. Production refuses a release without a valid approval (409)."""

    write_scope = ApiToken.Scope.DEPLOYMENTS

    @extend_schema(request=s.DeploymentIn, responses={201: s.DeploymentOut})
    def post(self, request: Request) -> Response:
        data = s.DeploymentIn(data=request.data)
        data.is_valid(raise_exception=True)
        backfill = data.validated_data["backfill"]
        if backfill:
            require_scope(request, ApiToken.Scope.BACKFILL)
        deployment = services.record_deployment(
            _endpoint(data.validated_data["endpoint"]),
            _release(data.validated_data["release"]),
            by=request.user,
            source=Deployment.Source.API,
            reason=data.validated_data["reason"],
            at=data.validated_data["deployed_at"],
            backfill=backfill,
        )
        return Response(s.DeploymentOut(deployment).data, status=status.HTTP_201_CREATED)


def _status(endpoint: Endpoint) -> lineage.EndpointStatus:
    [status] = lineage.endpoint_statuses(Endpoint.objects.filter(pk=endpoint.pk))
    return status


class EndpointList(APIView):
    """Every endpoint with its live release, since when, by whom, and its rollback target; declare one with POST."""

    write_scope = ApiToken.Scope.ENDPOINTS

    @extend_schema(responses=s.EndpointOut(many=True))
    def get(self, request: Request) -> Response:
        return Response(s.EndpointOut(lineage.endpoint_statuses(), many=True).data)

    @extend_schema(request=s.EndpointIn, responses={201: s.EndpointOut, 200: s.EndpointOut})
    def post(self, request: Request) -> Response:
        """Declare an endpoint: the same values again change nothing (200), other values under its name are 409."""
        data = s.EndpointIn(data=request.data)
        data.is_valid(raise_exception=True)
        endpoint, created = services.declare_endpoint(**data.validated_data, by=request.user)
        return Response(s.EndpointOut(_status(endpoint)).data, status=201 if created else 200)


class EndpointDetail(APIView):
    """One endpoint: what it serves, its live release, since when, by whom, and its rollback target."""

    @extend_schema(responses=s.EndpointOut)
    def get(self, request: Request, name: str) -> Response:
        return Response(s.EndpointOut(_status(_endpoint(name))).data)


class EndpointRollback(APIView):
    """Roll an endpoint back to its rollback target (409 when there is none, or it changed)."""

    write_scope = ApiToken.Scope.ROLLBACK

    @extend_schema(request=s.RollbackIn, responses={201: s.DeploymentOut})
    def post(self, request: Request, name: str) -> Response:
        data = s.RollbackIn(data=request.data)
        data.is_valid(raise_exception=True)
        deployment = services.roll_back(
            _endpoint(name),
            by=request.user,
            reason=data.validated_data["reason"],
            source=Deployment.Source.API,
            expected_target=data.validated_data["target"],
        )
        return Response(s.DeploymentOut(deployment).data, status=status.HTTP_201_CREATED)

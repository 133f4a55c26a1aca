"""Admin: a window on every table. Writes go through the same services as the pages and the API."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from axes.models import AccessAttempt
from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.auth.models import User
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html

from audit.vocabulary import OUTBOUND_EVENTS
from releases import credentials, lineage, services
from releases.approval_forms import SignatureForm
from releases.errors import LineageError
from releases.models import (
    ApiToken,
    Approval,
    Commit,
    Dataset,
    DatasetDigest,
    DatasetVersion,
    DatasetVersionEndpoint,
    Deployment,
    Endpoint,
    EndpointModel,
    EvidenceExport,
    ExperimentRun,
    FeaturePipeline,
    FeaturePipelineVersion,
    GitRepository,
    GitTag,
    ModelVersion,
    ModelVersionDataset,
    RegisteredModel,
    Release,
    RunDatasetInput,
    SyncedRun,
    SyncRequest,
    SyncState,
    TrackingServer,
    WebhookAttempt,
    WebhookDelivery,
    WebhookSubscription,
    WriteBack,
)
from releases.models.credentials import GitCredentials, MlflowCredentials
from releases.roles import ML_LEADS, RELEASE_MANAGERS, has_role, is_admin, may_act_as
from releases.services import accounts


class RecordAdmin(admin.ModelAdmin):
    """Read-only by default: rows are written by services, never edited in place, never deleted."""

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        if obj is None:
            return []
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context: Any = None) -> HttpResponse:
        """Adding a row goes through its service; a refusal comes back as an error on the same form."""
        if request.method == "POST" and self.has_add_permission(request):
            form = self.get_form(request)(request.POST, request.FILES)
            if form.is_valid():
                try:
                    created = self.create_through_service(request, form.cleaned_data)
                except LineageError as refusal:
                    request.service_refusal = refusal.message  # type: ignore[attr-defined]
                else:
                    self.log_addition(request, created, [{"added": {}}])
                    return self.response_add(request, created)
        return super().add_view(request, form_url, extra_context)

    # Fields a superuser may change on an existing row, through ``change_through_service``.
    changeable_fields: tuple[str, ...] = ()

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        """Changing a row goes through its service too; a refusal comes back as an error on the same form."""
        if request.method == "POST" and self.changeable_fields:
            obj = self.get_object(request, unquote(object_id))
            if obj is not None and self.has_change_permission(request, obj):
                form = self.get_form(request, obj, change=True)(request.POST, request.FILES, instance=obj)
                if form.is_valid():
                    try:
                        changed = self.change_through_service(request, obj, form.cleaned_data)
                    except LineageError as refusal:
                        request.service_refusal = refusal.message  # type: ignore[attr-defined]
                    else:
                        self.log_change(request, changed, [{"changed": {"fields": form.changed_data}}])
                        return self.response_change(request, changed)
        return super().change_view(request, object_id, form_url, extra_context)

    # Fields whose rule the service applies itself (with the same validator as the model's): the form
    # leaves them to it, so that a refusal is recorded in the audit trail, not only shown.
    service_checked_fields: tuple[str, ...] = ()

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        form = super().get_form(request, obj, change, **kwargs)
        if self.service_checked_fields:
            service_checked = set(self.service_checked_fields)

            class ServiceCheckedForm(form):  # type: ignore[valid-type,misc]
                def _get_validation_exclusions(self) -> set[str]:
                    return super()._get_validation_exclusions() | service_checked

            form = ServiceCheckedForm
        refusal = getattr(request, "service_refusal", "")
        if not refusal:
            return form

        class RefusedForm(form):  # type: ignore[valid-type,misc]
            def clean(self) -> Any:
                data = super().clean()
                self.add_error(None, refusal)
                return data

        return RefusedForm

    def save_model(self, request: HttpRequest, obj: Any, form: forms.ModelForm, change: bool) -> None:
        # Rows are only ever written by services (add_view calls them); never save a form's instance.
        raise PermissionError("records are written through the services, not saved from an admin form")

    def create_through_service(self, request: HttpRequest, data: dict[str, Any]) -> Any:
        raise NotImplementedError

    def change_through_service(self, request: HttpRequest, obj: Any, data: dict[str, Any]) -> Any:
        raise NotImplementedError


class AdministratorsOnly:
    """An admin page only administrators see at all: tokens, lockouts, webhooks and their deliveries."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return is_admin(request.user)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return is_admin(request.user)


class ReasonForm(forms.Form):
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=True)


def _confirmation_page(
    modeladmin: admin.ModelAdmin,
    request: HttpRequest,
    queryset: QuerySet[Any],
    *,
    label: str,
    title: str,
    form: forms.Form,
) -> TemplateResponse:
    """The intermediate page of an admin action: the selected rows and the form that confirms it."""
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": title,
        "label": label,
        "objects": list(queryset),
        "form": form,
        "action": request.POST.get("action"),
        "opts": modeladmin.model._meta,
    }
    return TemplateResponse(request, "admin/releases/reason_confirm.html", context)


def reason_action(
    label: str, apply: Callable[[Any, HttpRequest, str], object], *, permission: str
) -> Callable[[admin.ModelAdmin, HttpRequest, QuerySet[Any]], HttpResponse | None]:
    """An admin action that asks for a reason on a confirmation page, then calls a service per row.

    ``permission`` names the ModelAdmin's ``has_<permission>_permission``, which states the service's rule:
    the admin offers the action only to people the service would let through.
    """

    def action(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Any]) -> HttpResponse | None:
        form = ReasonForm(request.POST if "confirm" in request.POST else None)
        if "confirm" in request.POST and form.is_valid():
            for obj in queryset:
                try:
                    apply(obj, request, form.cleaned_data["reason"])
                    modeladmin.message_user(request, f"{label}: {obj}")
                except LineageError as exc:
                    modeladmin.message_user(request, f"{obj}: {exc.message}", messages.ERROR)
            return None
        return _confirmation_page(modeladmin, request, queryset, label=label, title=f"{label}: confirm", form=form)

    action.__name__ = label.lower().replace(" ", "_")
    return admin.action(description=label, permissions=[permission])(action)


def signature_action(
    label: str, decision: str
) -> Callable[[admin.ModelAdmin, HttpRequest, QuerySet[Any]], HttpResponse | None]:
    """An admin action that signs each selected release after a confirmation page.

    The page shows each release's lineage digest and posts it back: the signature covers the chain the
    signer was shown, and a chain that changed meanwhile is refused by the service.
    """

    def action(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Any]) -> HttpResponse | None:
        assert isinstance(request.user, User)  # the admin only serves signed-in staff
        data = request.POST.copy() if "confirm" in request.POST else None
        if data is not None:
            data["decision"] = decision
        form = SignatureForm(data)
        del form.fields["digest"]
        if decision == "reject":
            del form.fields["meaning"]
        if form.is_valid():
            for release in queryset:
                try:
                    services.sign_release(
                        release,
                        by=request.user,
                        decision=decision,
                        password=form.cleaned_data["password"],
                        meaning=form.cleaned_data.get("meaning", ""),
                        comment=form.cleaned_data["comment"],
                        expected_digest=request.POST.get(f"digest-{release.pk}", ""),
                    )
                    modeladmin.message_user(
                        request, f"{label}: {release} signed by {request.user.get_full_name() or request.user}"
                    )
                except LineageError as exc:
                    modeladmin.message_user(request, f"{release}: {exc.message}", messages.ERROR)
            return None
        del form.fields["decision"]
        digests = {
            trace.release.pk: trace.digest
            for trace in map(lineage.Trace, lineage.traced_releases().filter(pk__in=queryset.values("pk")))
        }
        page = _confirmation_page(modeladmin, request, queryset, label=label, title=f"{label}: sign", form=form)
        assert page.context_data is not None
        page.context_data["digests"] = digests
        return page

    action.__name__ = label.lower().replace(" ", "_")
    # Signing needs the ML lead role itself: a superuser who is not a lead may not sign (four-eyes).
    return admin.action(description=label, permissions=["sign"])(action)


class SourceAdmin(RecordAdmin):
    """A Git repository or MLflow server: added, and its credential changed, by a superuser through the service.

    The credential fields hold where the worker reads each secret (a variable's name, a file's path), never
    a secret, so showing them shows only which one is set.
    """

    credential_fields: tuple[str, ...] = ()

    @property
    def changeable_fields(self) -> tuple[str, ...]:  # type: ignore[override]
        return self.credential_fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return request.user.is_superuser

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.is_superuser

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        if obj is None:
            return []
        return [str(f) for f in self.get_fields(request, obj) if f not in self.credential_fields]

    @admin.display(description="credential")
    def credential_set(self, obj: GitRepository | TrackingServer) -> str:
        return obj.credential or "none"


@admin.register(GitRepository)
class GitRepositoryAdmin(SourceAdmin):
    list_display = ["name", "url", "default_branch", "credential_set"]
    credential_fields = ("token_env", "token_file", "ssh_key_file", "known_hosts_file")
    fields = ["name", "url", "commit_url_template", *credential_fields]
    service_checked_fields = ("commit_url_template", *credential_fields)

    def create_through_service(self, request: HttpRequest, data: dict[str, Any]) -> GitRepository | None:
        return services.add_git_repository(
            name=data["name"],
            url=data["url"],
            commit_url_template=data["commit_url_template"],
            credentials=GitCredentials(**{f: data[f] for f in self.credential_fields}),
            by=request.user,
        ).repository

    def change_through_service(self, request: HttpRequest, obj: GitRepository, data: dict[str, Any]) -> GitRepository:
        credentials = GitCredentials(**{f: data[f] for f in self.credential_fields})
        return services.set_git_credentials(obj, credentials=credentials, by=request.user)


@admin.register(Commit)
class CommitAdmin(RecordAdmin):
    list_display = ["short_sha", "repository", "author_name", "committed_at", "summary"]
    list_filter = ["repository"]
    search_fields = ["sha", "message", "author_name"]
    list_select_related = ["repository"]


@admin.register(GitTag)
class GitTagAdmin(RecordAdmin):
    list_display = ["name", "repository", "commit", "moved_to_sha", "moved_at"]
    list_filter = ["repository"]
    search_fields = ["name"]
    list_select_related = ["repository", "commit"]


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class DatasetDigestInline(ReadOnlyInline):
    model = DatasetDigest


class RunDatasetInputInline(ReadOnlyInline):
    model = RunDatasetInput
    raw_id_fields = ["dataset_version"]


@admin.register(Dataset)
class DatasetAdmin(RecordAdmin):
    list_display = ["name", "created_at"]
    search_fields = ["name"]


@admin.register(FeaturePipeline)
class FeaturePipelineAdmin(RecordAdmin):
    list_display = ["name"]
    search_fields = ["name"]


@admin.register(DatasetVersion)
class DatasetVersionAdmin(RecordAdmin):
    inlines = [DatasetDigestInline]
    list_display = ["key", "content_hash", "status", "mutated", "registered_at"]
    list_filter = ["status", "mutated", "dataset"]
    search_fields = ["dataset__name", "content_hash", "uri"]
    list_select_related = ["dataset"]
    actions = [
        reason_action(
            "Quarantine",
            lambda obj, request, reason: services.quarantine_dataset_version(obj, by=request.user, reason=reason),
            permission="quarantine",
        ),
        reason_action(
            "Lift quarantine",
            lambda obj, request, reason: services.lift_quarantine(obj, by=request.user, reason=reason),
            permission="quarantine",
        ),
    ]

    def has_quarantine_permission(self, request: HttpRequest) -> bool:
        return may_act_as(request.user, ML_LEADS)


@admin.register(FeaturePipelineVersion)
class FeaturePipelineVersionAdmin(RecordAdmin):
    list_display = ["key", "commit", "created_at"]
    list_select_related = ["pipeline", "commit"]


@admin.register(TrackingServer)
class TrackingServerAdmin(SourceAdmin):
    list_display = ["name", "tracking_uri", "ui_url", "credential_set"]
    credential_fields = ("token_env", "token_file", "username", "password_env", "password_file")
    fields = ["name", "tracking_uri", "ui_url", *credential_fields]
    service_checked_fields = ("ui_url", *credential_fields)

    def create_through_service(self, request: HttpRequest, data: dict[str, Any]) -> TrackingServer | None:
        return services.add_mlflow_server(
            name=data["name"],
            tracking_uri=data["tracking_uri"],
            ui_url=data["ui_url"],
            credentials=MlflowCredentials(**{f: data[f] for f in self.credential_fields}),
            by=request.user,
        ).server

    def change_through_service(self, request: HttpRequest, obj: TrackingServer, data: dict[str, Any]) -> TrackingServer:
        credentials = MlflowCredentials(**{f: data[f] for f in self.credential_fields})
        return services.set_mlflow_credentials(obj, credentials=credentials, by=request.user)


@admin.register(ExperimentRun)
class ExperimentRunAdmin(RecordAdmin):
    inlines = [RunDatasetInputInline]
    list_display = ["run_id", "name", "server", "status", "user", "start_time", "commit_sha"]
    list_filter = ["server", "status"]
    search_fields = ["run_id", "name", "commit_sha"]
    list_select_related = ["server"]


@admin.register(RegisteredModel)
class RegisteredModelAdmin(RecordAdmin):
    list_display = ["name", "server"]


@admin.register(ModelVersion)
class ModelVersionAdmin(RecordAdmin):
    list_display = ["key", "source_run_id", "artifact_uri", "created_at"]
    list_filter = ["registered_model"]
    list_select_related = ["registered_model"]


@admin.register(Release)
class ReleaseAdmin(RecordAdmin):
    list_display = ["name", "model_version", "state", "created_by", "created_at"]
    list_filter = ["state"]
    search_fields = ["name"]
    list_select_related = ["model_version__registered_model", "created_by"]
    actions = [
        reason_action(
            "Retire",
            lambda obj, request, reason: services.retire_release(obj, by=request.user, reason=reason),
            permission="retire",
        ),
        signature_action("Approve (sign)", "approve"),
        signature_action("Reject (sign)", "reject"),
    ]

    def has_retire_permission(self, request: HttpRequest) -> bool:
        return may_act_as(request.user, RELEASE_MANAGERS, ML_LEADS)

    def has_sign_permission(self, request: HttpRequest) -> bool:
        return has_role(request.user, ML_LEADS)


@admin.register(Approval)
class ApprovalAdmin(RecordAdmin):
    list_display = ["release", "approver_name", "decision", "meaning", "signed_at"]
    list_filter = ["decision"]
    list_select_related = ["release"]


@admin.register(Endpoint)
class EndpointAdmin(RecordAdmin):
    list_display = ["name", "environment", "registered_model", "mlflow_alias"]
    list_filter = ["environment"]
    fields = ["name", "environment", "registered_model", "mlflow_alias", "description"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return request.user.is_superuser

    def create_through_service(self, request: HttpRequest, data: dict[str, Any]) -> Endpoint:
        model = data.get("registered_model")
        return services.create_endpoint(
            name=data["name"],
            environment=data["environment"],
            registered_model=model.name if model else "",
            mlflow_alias=data["mlflow_alias"],
            description=data["description"],
            by=request.user,
        )


@admin.register(Deployment)
class DeploymentAdmin(RecordAdmin):
    list_display = ["endpoint", "release", "deployed_at", "kind", "actor", "source"]
    list_filter = ["kind", "source", "endpoint"]
    list_select_related = ["endpoint", "release"]


@admin.register(EndpointModel)
class EndpointModelAdmin(RecordAdmin):
    """Where each registered model's releases went, kept by the deployment service."""

    list_display = ["registered_model", "endpoint"]
    list_filter = ["registered_model"]
    list_select_related = ["registered_model", "endpoint"]


@admin.register(ModelVersionDataset)
class ModelVersionDatasetAdmin(RecordAdmin):
    """The dataset versions each model version's run used, kept equal to the run's inputs by the services."""

    list_display = ["model_version", "dataset_version"]
    list_select_related = ["model_version__registered_model", "dataset_version__dataset"]


@admin.register(DatasetVersionEndpoint)
class DatasetVersionEndpointAdmin(RecordAdmin):
    """The endpoints each dataset version reached through a release's deployment, kept by the services."""

    list_display = ["dataset_version", "endpoint"]
    list_select_related = ["dataset_version__dataset", "endpoint"]


@admin.register(ApiToken)
class ApiTokenAdmin(AdministratorsOnly, RecordAdmin):
    """Tokens are issued by `manage.py create_api_token` (the raw value is shown once there, never here).

    Administrators only: a token acts for CI, and whoever can revoke one can stop every pipeline.
    """

    list_display = [
        "name",
        "user",
        "hint",
        "scopes",
        "created_at",
        "created_by",
        "expires_at",
        "last_used_at",
        "revoked_at",
    ]
    list_filter = ["revoked_at"]
    list_select_related = ["user"]
    exclude = ["token_hash"]
    actions = [
        reason_action(
            "Revoke",
            lambda obj, request, reason: services.revoke_api_token(obj, by=request.user, reason=reason),
            permission="manage_tokens",
        )
    ]

    def has_manage_tokens_permission(self, request: HttpRequest) -> bool:
        return is_admin(request.user)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [f.name for f in self.model._meta.fields if f.name != "token_hash"]


@admin.register(SyncState)
class SyncStateAdmin(RecordAdmin):
    """Sync bookkeeping: shown for diagnosis, changed only by the sync itself (or "sync now" on /sync/)."""

    list_display = ["__str__", "kind", "enabled", "last_success_at", "last_attempt_at", "failures_in_a_row"]
    list_filter = ["kind", "enabled"]
    list_select_related = ["repository", "server"]


@admin.register(SyncedRun)
class SyncedRunAdmin(RecordAdmin):
    list_display = ["run_id", "server", "pending"]
    list_filter = ["pending", "server"]
    search_fields = ["run_id"]
    list_select_related = ["server"]


@admin.register(SyncRequest)
class SyncRequestAdmin(RecordAdmin):
    """MLflow webhook deliveries waiting for a sync to serve them (the sync deletes each batch it served)."""

    list_display = ["received_at", "state", "event", "model_name", "run_id", "delivery_id"]
    list_select_related = ["state__server", "state__repository"]
    search_fields = ["delivery_id", "model_name", "run_id"]


@admin.register(WriteBack)
class WriteBackAdmin(RecordAdmin):
    list_display = ["model_name", "version", "kind", "key", "value", "status", "attempts", "created_at"]
    list_filter = ["status", "kind"]
    list_select_related = ["server"]


@admin.register(EvidenceExport)
class EvidenceExportAdmin(RecordAdmin):
    """Period bundles asked for on /audit/evidence/: who asked, for what, how far the worker got."""

    list_display = ["requested_at", "requested_by", "since", "until", "state", "releases_done", "releases_total"]
    list_filter = ["state"]
    list_select_related = ["requested_by"]


@admin.register(AccessAttempt)
class AccessAttemptAdmin(AdministratorsOnly, RecordAdmin):
    """Wrong-password counts per account (sign-in and signatures); "Unlock" clears one, as an audit event."""

    list_display = ["username", "failures_since_start", "attempt_time", "ip_address", "user_agent"]
    search_fields = ["username", "ip_address"]
    ordering = ["-attempt_time"]
    exclude = ["get_data", "post_data"]
    actions = [
        reason_action(
            "Unlock",
            lambda obj, request, reason: accounts.unlock_account(obj.username, by=request.user, reason=reason),
            permission="unlock",
        )
    ]

    def has_unlock_permission(self, request: HttpRequest) -> bool:
        return is_admin(request.user)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [f.name for f in self.model._meta.fields if f.name not in ("get_data", "post_data")]


class WebhookSubscriptionForm(forms.ModelForm):
    events = forms.MultipleChoiceField(
        choices=[(event, f"{event}: {description}") for event, (_, description) in OUTBOUND_EVENTS.items()],
        widget=forms.CheckboxSelectMultiple,
    )

    class Meta:
        model = WebhookSubscription
        fields = ["name", "url", "format", "events", "secret_env", "active"]


@admin.register(WebhookSubscription)
class WebhookSubscriptionAdmin(AdministratorsOnly, RecordAdmin):
    """Where outbound events go. Administrators only, added and changed through the services (audited);
    switched off rather than deleted, so its delivery log stays."""

    form = WebhookSubscriptionForm
    list_display = ["name", "url", "format", "active", "event_list", "secret", "delivery_log"]
    list_filter = ["active", "format"]
    service_checked_fields = ("url",)
    changeable_fields = ("url", "format", "events", "secret_env", "active")

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        fields = ["name", "url", "format", "events", "secret_env", "active"]
        return [*fields, "secret", "delivery_log", "created_at"] if obj is not None else fields

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return ["name", "secret", "delivery_log", "created_at"] if obj is not None else []

    def has_add_permission(self, request: HttpRequest) -> bool:
        return is_admin(request.user)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return is_admin(request.user)

    @admin.display(description="events")
    def event_list(self, obj: WebhookSubscription) -> str:
        return "all" if set(obj.events) >= set(OUTBOUND_EVENTS) else ", ".join(obj.events)

    @admin.display(description="secret, in this process")
    def secret(self, obj: WebhookSubscription) -> str:
        # Which variable is set (or the file it names), never the value.
        return credentials.where(obj.secret_env)

    @admin.display(description="deliveries")
    def delivery_log(self, obj: WebhookSubscription) -> str:
        url = reverse("admin:releases_webhookdelivery_changelist") + f"?subscription__id__exact={obj.pk}"
        return format_html('<a href="{}">delivery log</a>', url)

    def create_through_service(self, request: HttpRequest, data: dict[str, Any]) -> WebhookSubscription:
        return services.add_webhook(
            name=data["name"],
            url=data["url"],
            events=data["events"],
            format=data["format"],
            secret_env=data["secret_env"],
            active=data["active"],
            by=request.user,
        )[0]

    def change_through_service(
        self, request: HttpRequest, obj: WebhookSubscription, data: dict[str, Any]
    ) -> WebhookSubscription:
        return services.change_webhook(
            obj,
            url=data["url"],
            events=data["events"],
            format=data["format"],
            secret_env=data["secret_env"],
            active=data["active"],
            by=request.user,
        )


class WebhookAttemptInline(ReadOnlyInline):
    model = WebhookAttempt


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(AdministratorsOnly, RecordAdmin):
    """The delivery log: each event sent to each webhook, with every attempt and what the receiver answered."""

    inlines = [WebhookAttemptInline]
    list_display = [
        "created_at",
        "subscription",
        "event",
        "audit_seq",
        "status",
        "attempts",
        "last_status_code",
        "last_error",
        "next_attempt_at",
        "delivered_at",
    ]
    list_filter = ["status", "event", "subscription"]
    search_fields = ["delivery_id", "event"]
    list_select_related = ["subscription"]

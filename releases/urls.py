from __future__ import annotations

from django.urls import path

from releases.views import (
    actions,
    approvals,
    audit_trail,
    evidence,
    explore,
    inventory,
    links,
    pages,
    period_evidence,
    sync,
)

app_name = "releases"

urlpatterns = [
    path("", pages.board, name="board"),
    path("releases/", pages.release_list, name="release_list"),
    path("releases/compare/", explore.compare, name="compare"),
    path("releases/<str:name>/", pages.release_detail, name="release"),
    path("search/", explore.search, name="search"),
    path("investigate/", explore.investigate, name="investigate"),
    path("sync/", sync.sync_status, name="sync"),
    path("sync/<int:pk>/now/", sync.sync_now, name="sync_now"),
    path("datasets/<str:name>/<int:version>/", links.dataset_version, name="dataset_version"),
    path("datasets/<str:name>/<int:version>/quarantine/", links.quarantine, name="quarantine"),
    path("datasets/<str:name>/<int:version>/lift-quarantine/", links.lift_quarantine, name="lift_quarantine"),
    path("commits/<str:sha>/", links.commit, name="commit"),
    path("runs/<str:run_id>/", links.run, name="run"),
    path("models/<str:name>/", links.model, name="model"),
    path("inventory/", inventory.inventory, name="inventory"),
    path("inventory.csv", inventory.inventory_csv, name="inventory_csv"),
    path("inventory/<str:name>/describe/", inventory.describe, name="describe_model"),
    path("endpoints/<str:name>/", links.endpoint, name="endpoint"),
    path("approvals/", approvals.approval_queue, name="approvals"),
    path("releases/<str:name>/sign/", approvals.sign, name="sign"),
    path("releases/<str:name>/evidence/", evidence.export, name="evidence"),
    path("audit/verify.py", evidence.verifier_source, name="verifier"),
    path("audit/", audit_trail.events, name="audit_events"),
    path("audit/events/<int:seq>/", audit_trail.event, name="audit_event"),
    path("audit/export.csv", audit_trail.export, {"fmt": "csv"}, name="audit_export_csv"),
    path("audit/export.jsonl", audit_trail.export, {"fmt": "jsonl"}, name="audit_export_jsonl"),
    path("audit/evidence/", period_evidence.period_evidence, name="period_evidence"),
    path("audit/evidence/<uuid:pk>/", period_evidence.period_evidence_status, name="period_evidence_status"),
    path(
        "audit/evidence/<uuid:pk>/download/",
        period_evidence.period_evidence_download,
        name="period_evidence_download",
    ),
    path("audit/alarm/<int:run>/acknowledge/", audit_trail.acknowledge, name="acknowledge_alarm"),
    path("endpoints/<str:name>/rollback/", approvals.rollback, name="rollback"),
    path("endpoints/<str:name>/deploy/", actions.deploy, name="deploy"),
]

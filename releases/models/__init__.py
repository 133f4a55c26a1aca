"""The release chain, one module per link."""

from __future__ import annotations

from releases.models.access import ApiToken
from releases.models.base import ImmutableFieldError
from releases.models.code import Commit, GitRepository, GitTag
from releases.models.data import Dataset, DatasetDigest, DatasetVersion
from releases.models.deployment import DatasetVersionEndpoint, Deployment, Endpoint, EndpointModel
from releases.models.evidence import EvidenceExport
from releases.models.experiment import ExperimentRun, RunDatasetInput, TrackingServer
from releases.models.features import FeaturePipeline, FeaturePipelineVersion
from releases.models.outbound import WebhookAttempt, WebhookDelivery, WebhookSubscription
from releases.models.registry import ModelVersion, ModelVersionDataset, RegisteredModel
from releases.models.release import Approval, Release
from releases.models.sync import SyncedRun, SyncRequest, SyncState, WriteBack

__all__ = [
    "ApiToken",
    "Approval",
    "Commit",
    "Dataset",
    "DatasetDigest",
    "DatasetVersion",
    "DatasetVersionEndpoint",
    "Deployment",
    "Endpoint",
    "EndpointModel",
    "EvidenceExport",
    "ExperimentRun",
    "FeaturePipeline",
    "FeaturePipelineVersion",
    "GitRepository",
    "GitTag",
    "ImmutableFieldError",
    "ModelVersion",
    "ModelVersionDataset",
    "RegisteredModel",
    "Release",
    "RunDatasetInput",
    "SyncRequest",
    "SyncState",
    "SyncedRun",
    "TrackingServer",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookSubscription",
    "WriteBack",
]

"""The cast and the facts of the demo story: who works here, what each release was trained on, and when.

churn-v40..v42 were trained, approved and deployed one after the other; churn-v42, trained on
churn-train:18 (the partner's changed label mapping), is live on churn-scoring with churn-v41 as its
rollback target. fraud-v8 runs on staging without a dataset link, so it cannot be approved.
churn-v43, a tuning of v42 on the same data, waits for an ML lead's signature.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from audit.log import SystemActor
from releases.roles import AUDITORS, ML_LEADS, ON_CALL, RELEASE_MANAGERS

DEMO = SystemActor("demo-builder")

PEOPLE = (
    ("lead", "Lena", "Lead", (ML_LEADS,), False),
    ("lead2", "Omar", "Second", (ML_LEADS,), False),
    ("auditor", "Ada", "Auditor", (AUDITORS,), False),
    ("oncall", "Otto", "Oncall", (ON_CALL,), False),
    ("admin", "Sam", "Admin", (ML_LEADS, RELEASE_MANAGERS), True),
)
APPROVER = "lead"

REPOSITORY = "churn-model"
COMMIT_URL_TEMPLATE = "https://git.example.com/ml/churn-model/commit/{sha}"
TRACKING_SERVER = "mlflow"
MLFLOW_UI = "http://127.0.0.1:5000"
EVAL_DATASET = ("churn-eval", 3)


@dataclass(frozen=True)
class EndpointSpec:
    name: str
    environment: str
    registered_model: str
    # Serving follows models:/<registered_model>@<alias>; deploying through the product moves the alias.
    mlflow_alias: str = ""


ENDPOINTS = {
    spec.name: spec
    for spec in (
        EndpointSpec("churn-scoring", "production", "churn-model", "production"),
        EndpointSpec("churn-scoring-staging", "staging", "churn-model", "staging"),
        EndpointSpec("fraud-scoring-staging", "staging", "fraud-model"),
    )
}


def hours(value: float) -> datetime.timedelta:
    return datetime.timedelta(hours=value)


# When each step happened, before the moment the release went live (or, for one still waiting,
# was submitted): the commit a day before, training in the night, CI cutting the release in the
# morning, the lead signing, staging, then production. Every step is recorded at its moment, so a
# release is always created before it is approved, and approved before it reaches production.
COMMITTED = hours(24)
DATA_REGISTERED = hours(18)
TRAINING_STARTED = hours(12)
TRAINING_MINUTES = 42
SYNCED = hours(10)
RELEASE_CUT = hours(9)
APPROVED = hours(7)


@dataclass(frozen=True)
class ModelRelease:
    """One release of the story and the MLflow run and model version behind it."""

    model: str
    number: int
    dataset: int | None
    feature_view: str
    auc: float
    message: str
    # When it went live on its last endpoint (or was submitted, when it goes nowhere), in days before the build.
    days_ago: float
    max_depth: int = 6
    user: str = "dana"
    tagged: bool = True
    approve: bool = True
    # (endpoint, hours before going live there): staging first, then production.
    endpoints: tuple[tuple[str, float], ...] = (("churn-scoring-staging", 6), ("churn-scoring", 0))

    @property
    def name(self) -> str:
        return f"{self.model}-v{self.number}"

    @property
    def registered_model(self) -> str:
        return f"{self.model}-model"

    @property
    def git_tag(self) -> str:
        return f"model-{self.name}" if self.tagged else ""

    @property
    def dataset_key(self) -> str:
        return f"churn-train:{self.dataset}" if self.dataset is not None else ""


CHURN = (
    ModelRelease("churn", 40, 16, "customer_features_v4", 0.851, "Train churn model on Q1 data", 20),
    ModelRelease("churn", 41, 17, "customer_features_v4", 0.858, "Add tenure buckets to churn model", 9),
    ModelRelease("churn", 42, 18, "customer_features_v5", 0.862, "Use partner label mapping v2", 1.5, max_depth=8),
)

# The fraud model's data is not versioned yet: its run names no dataset, so its release lacks that link.
FRAUD = ModelRelease(
    "fraud",
    8,
    None,
    "transaction_features_v2",
    0.912,
    "Fraud model v8",
    1.2,
    user="sam",
    tagged=False,
    approve=False,
    endpoints=(("fraud-scoring-staging", 0),),
)

# Submitted this morning with a complete chain and its validation report: waiting for a lead.
WAITING = ModelRelease(
    "churn",
    43,
    18,
    "customer_features_v5",
    0.866,
    "Deeper trees for churn model",
    0.3,
    max_depth=10,
    approve=False,
    endpoints=(),
)

# In the order they were trained.
RELEASES = (*CHURN, FRAUD, WAITING)

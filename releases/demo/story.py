"""The cast and the facts of the demo story: who works here, what each churn release was trained on."""

from __future__ import annotations

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

REPOSITORY = "churn-model"
COMMIT_URL_TEMPLATE = "https://git.example.com/ml/churn-model/commit/{sha}"
TRACKING_SERVER = "mlflow"
MLFLOW_UI = "http://127.0.0.1:5000"
EVAL_DATASET = ("churn-eval", 3)
# Serving follows models:/churn-model@production and @staging; the team's deploy job moved both to
# the newest churn version when it went out.
SERVING_ALIASES = ("production", "staging")


@dataclass(frozen=True)
class ModelRelease:
    """One release of the story and the MLflow run and model version behind it."""

    model: str
    number: int
    dataset: int | None
    feature_view: str
    auc: float
    message: str
    days_ago: float
    user: str = "dana"
    tagged: bool = True

    @property
    def name(self) -> str:
        return f"{self.model}-v{self.number}"

    @property
    def registered_model(self) -> str:
        return f"{self.model}-model"

    @property
    def git_tag(self) -> str:
        return f"model-{self.name}" if self.tagged else ""


CHURN = (
    ModelRelease("churn", 40, 16, "customer_features_v4", 0.851, "Train churn model on Q1 data", 20),
    ModelRelease("churn", 41, 17, "customer_features_v4", 0.858, "Add tenure buckets to churn model", 9),
    ModelRelease("churn", 42, 18, "customer_features_v5", 0.862, "Use partner label mapping v2", 1.5),
)

# The fraud model's data is not versioned yet: its run names no dataset, so its release lacks that link.
FRAUD = ModelRelease(
    "fraud", 8, None, "transaction_features_v2", 0.912, "Fraud model v8", 1.2, user="sam", tagged=False
)

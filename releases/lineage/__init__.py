"""Read side of the chain: trace, digest, completeness, live, rollback target, impact, compare.

Every function here runs a fixed number of queries whatever the number of rows, so the pages and
API endpoints built on them stay constant-query. One module per question a person asks.
"""

from __future__ import annotations

from releases.lineage.compare import (
    COMMITS_BETWEEN_LIMIT,
    COMMITS_SHOWN,
    Comparison,
    Difference,
    MetricDelta,
    as_float,
    commits_between,
    compare,
    compare_traces,
)
from releases.lineage.details import (
    LOWER_IS_BETTER,
    DatasetVersionDetail,
    MetricPoint,
    MetricSeries,
    ModelHistory,
    commit_detail,
    dataset_version_detail,
    model_history,
    release_list,
    run_detail,
)
from releases.lineage.history import (
    DEPLOYMENT_HISTORY_LIMIT,
    EndpointHistory,
    Investigation,
    endpoint_history,
    investigate,
)
from releases.lineage.impact import Impact, impact_of_commit, impact_of_dataset_version, impact_of_run, releases_using
from releases.lineage.live import (
    EndpointStatus,
    EndpointWithLive,
    LiveAnnotations,
    endpoint_statuses,
    endpoints_with_live,
    live_at,
    restorable,
    rollback_target,
)
from releases.lineage.search import HEX_RE, SearchHit, resolve
from releases.lineage.trace import (
    APPROVAL_LINKS,
    LINKS,
    ApprovalState,
    Link,
    Trace,
    chain_changes,
    previous_release,
    release_events,
    trace,
    traced_releases,
)

__all__ = [
    "APPROVAL_LINKS",
    "COMMITS_BETWEEN_LIMIT",
    "COMMITS_SHOWN",
    "DEPLOYMENT_HISTORY_LIMIT",
    "HEX_RE",
    "LINKS",
    "LOWER_IS_BETTER",
    "ApprovalState",
    "Comparison",
    "DatasetVersionDetail",
    "Difference",
    "EndpointHistory",
    "EndpointStatus",
    "EndpointWithLive",
    "Impact",
    "Investigation",
    "Link",
    "LiveAnnotations",
    "MetricDelta",
    "MetricPoint",
    "MetricSeries",
    "ModelHistory",
    "SearchHit",
    "Trace",
    "as_float",
    "chain_changes",
    "commit_detail",
    "commits_between",
    "compare",
    "compare_traces",
    "dataset_version_detail",
    "endpoint_history",
    "endpoint_statuses",
    "endpoints_with_live",
    "impact_of_commit",
    "impact_of_dataset_version",
    "impact_of_run",
    "investigate",
    "live_at",
    "model_history",
    "previous_release",
    "release_events",
    "release_list",
    "releases_using",
    "resolve",
    "restorable",
    "rollback_target",
    "run_detail",
    "trace",
    "traced_releases",
]

"""Read side of the chain: trace, rules, live and rollback target, impact, compare, history, search.

Every function here runs a fixed number of queries whatever the number of rows, so the pages and
API endpoints built on them stay constant-query. One module per question a person asks; the names
below are the ones the doors use.
"""

from __future__ import annotations

from releases.lineage.compare import Comparison, compare
from releases.lineage.details import (
    DatasetVersionDetail,
    MetricSeries,
    commit_detail,
    dataset_version_detail,
    model_history,
    release_list,
    run_detail,
)
from releases.lineage.history import endpoint_history, investigate
from releases.lineage.impact import (
    Impact,
    ImpactPageNumbers,
    ImpactPages,
    impact_of_commit,
    impact_of_dataset_version,
    impact_of_run,
    releases_using,
)
from releases.lineage.inventory import InventoryRow, inventory, inventory_models
from releases.lineage.live import (
    EndpointStatus,
    RollbackPlan,
    Traced,
    endpoint_statuses,
    moved_alias,
    rollback_plan,
)
from releases.lineage.paging import PAGE_SIZE, Page, keyset_page, numbered_page
from releases.lineage.periods import ReleasePeriod, release_periods
from releases.lineage.population import Change, Period, changes_in, environments, population
from releases.lineage.rules import (
    STATUS_KEYS,
    ApprovalState,
    Refusal,
    ReleaseStatus,
    approval_queue,
    approval_state,
    awaiting_signature,
    promotion_refusal,
    release_status,
    signing_refusal,
)
from releases.lineage.search import GROUP_LIMIT, MAX_QUERY_LENGTH, SearchHit, SearchResults, search
from releases.lineage.trace import (
    Link,
    Trace,
    previous_release,
    release_events,
    release_scope,
    release_timeline,
    status_traces,
    trace,
    traced_releases,
)

__all__ = [
    "GROUP_LIMIT",
    "MAX_QUERY_LENGTH",
    "PAGE_SIZE",
    "STATUS_KEYS",
    "ApprovalState",
    "Change",
    "Comparison",
    "DatasetVersionDetail",
    "EndpointStatus",
    "Impact",
    "ImpactPageNumbers",
    "ImpactPages",
    "InventoryRow",
    "Link",
    "MetricSeries",
    "Page",
    "Period",
    "Refusal",
    "ReleasePeriod",
    "ReleaseStatus",
    "RollbackPlan",
    "SearchHit",
    "SearchResults",
    "Trace",
    "Traced",
    "approval_queue",
    "approval_state",
    "awaiting_signature",
    "changes_in",
    "commit_detail",
    "compare",
    "dataset_version_detail",
    "endpoint_history",
    "endpoint_statuses",
    "environments",
    "impact_of_commit",
    "impact_of_dataset_version",
    "impact_of_run",
    "inventory",
    "inventory_models",
    "investigate",
    "keyset_page",
    "model_history",
    "moved_alias",
    "numbered_page",
    "population",
    "previous_release",
    "promotion_refusal",
    "release_events",
    "release_list",
    "release_periods",
    "release_scope",
    "release_status",
    "release_timeline",
    "releases_using",
    "rollback_plan",
    "run_detail",
    "search",
    "signing_refusal",
    "status_traces",
    "trace",
    "traced_releases",
]

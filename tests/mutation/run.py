"""Mutation testing of the rule modules: ``make mutation``.

Each rule module is mutated one operator at a time by cosmic-ray (``cosmic-ray init`` lists every
mutant of a module), and each sampled mutant is run against the tests that exercise that module, in
clones of the repository's HEAD so that two mutants can be tested at once. A mutant the tests kill is
a rule they hold; one that survives is a rule no test holds. Mutants that cannot change behaviour are
listed with their reason in ``tests/mutation/equivalent.txt`` and not run: one mutant by its module,
operator and occurrence, or a whole class by glob patterns and the word ``annotation`` (a mutant inside
a type annotation, which ``from __future__ import annotations`` never evaluates).

Settings (environment): MUTATION_SAMPLE mutants per module (default 30; 0 runs them all),
MUTATION_SEED (default 6962), MUTATION_WORKERS (default 2), MUTATION_MODULES (a comma-separated subset
of the module paths below). The tests run on SQLite with eager Celery; for the modules with code only
PostgreSQL runs, given MUTATION_POSTGRES (a server URL without a database, e.g.
postgres://postgres@127.0.0.1:5432), they then run on PostgreSQL too, one database per worker. Before its mutants,
each module's tests run once unmutated: a module whose tests fail without a mutant stops the run.
The last line printed is ``N mutants, K killed, E equivalent, S survived``; the survivors, with their
diffs, are written to var/mutation/survivors.txt.
"""

from __future__ import annotations

import ast
import concurrent.futures
import fnmatch
import os
import random
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WORK = ROOT / "var" / "mutation"
EQUIVALENTS = Path(__file__).with_name("equivalent.txt")

# Modules with code only PostgreSQL runs (COPY, server-side pages): their mutants need it to be tested.
POSTGRES_MODULES = {"audit/log.py"}

# Each rule module and the tests that exercise it.
MODULES: dict[str, list[str]] = {
    "releases/lineage/rules.py": [
        "tests/unit/lineage/test_rules.py",
        "tests/unit/services/test_rules_hold.py",
        "tests/unit/services/test_release.py",
        "tests/unit/services/test_deployment.py",
    ],
    "releases/lineage/live.py": [
        "tests/unit/lineage/test_live.py",
        "tests/unit/services/test_deployment.py",
        "tests/unit/services/test_rules_hold.py",
    ],
    "releases/lineage/trace.py": [
        "tests/unit/lineage/test_trace.py",
        "tests/unit/lineage/test_periods.py",
        "tests/unit/services/test_rules_hold.py",
        "tests/unit/services/test_release.py",
    ],
    "releases/services/deployment.py": [
        "tests/unit/services/test_deployment.py",
        "tests/unit/services/test_rules_hold.py",
    ],
    "releases/services/release.py": [
        "tests/unit/services/test_release.py",
        "tests/unit/services/test_rules_hold.py",
    ],
    "audit/log.py": [
        "tests/unit/test_audit.py",
        # Writers at once: the append lock is what keeps their sequence numbers apart.
        "tests/integration/test_concurrency.py::test_two_leads_approving_at_once",
        "tests/unit/test_verification.py",
        "tests/unit/services/test_rules_hold.py",
    ],
    "audit/merkle.py": [
        "tests/unit/test_merkle.py",
        "tests/unit/test_tree.py",
        "tests/unit/services/test_rules_hold.py",
    ],
}


@dataclass(frozen=True)
class Mutant:
    job_id: str
    module: str
    operator: str
    occurrence: int
    line: int
    in_annotation: bool


@dataclass(frozen=True)
class Equivalent:
    module: str  # glob
    operator: str  # glob
    occurrence: str  # a number, or "annotation"
    reason: str

    def covers(self, mutant: Mutant) -> bool:
        if not (
            fnmatch.fnmatchcase(mutant.module, self.module) and fnmatch.fnmatchcase(mutant.operator, self.operator)
        ):
            return False
        if self.occurrence == "annotation":
            return mutant.in_annotation
        return int(self.occurrence) == mutant.occurrence


def _equivalents() -> list[Equivalent]:
    """``module operator occurrence reason...`` per line; # starts a comment."""
    found: list[Equivalent] = []
    for number, raw in enumerate(EQUIVALENTS.read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split(maxsplit=3)
        occurrence = parts[2] if len(parts) > 2 else ""
        if len(parts) < 4 or not (occurrence == "annotation" or (occurrence.isascii() and occurrence.isdecimal())):
            sys.exit(f"{EQUIVALENTS}:{number}: expected 'module operator occurrence-or-annotation reason'")
        found.append(Equivalent(*parts))
    return found


def _annotation_spans(module: str) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """Where the type annotations of ``module`` are, as (start, end) (line, column) pairs."""
    tree = ast.parse((ROOT / module).read_text())
    annotations: list[ast.expr] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.arg | ast.AnnAssign) and node.annotation is not None:
            annotations.append(node.annotation)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.returns is not None:
            annotations.append(node.returns)
    return [
        ((a.lineno, a.col_offset), (a.end_lineno or a.lineno, a.end_col_offset or a.col_offset)) for a in annotations
    ]


def _listed(module: str) -> list[Mutant]:
    """Every mutant cosmic-ray finds in ``module``, from its own session database."""
    from cosmic_ray.work_db import WorkDB, use_db

    slug = module.replace("/", "_").removesuffix(".py")
    config, session = WORK / f"{slug}.toml", WORK / f"{slug}.sqlite"
    config.write_text(
        "[cosmic-ray]\n"
        f'module-path = "{module}"\n'
        "timeout = 600.0\n"
        "excluded-modules = []\n"
        'test-command = "true"\n'
        "[cosmic-ray.distributor]\n"
        'name = "local"\n'
    )
    session.unlink(missing_ok=True)
    subprocess.run([_bin("cosmic-ray"), "init", str(config), str(session)], cwd=ROOT, check=True)
    spans = _annotation_spans(module)
    with use_db(str(session), WorkDB.Mode.open) as db:
        return [
            Mutant(
                item.job_id,
                module,
                m.operator_name,
                m.occurrence,
                m.start_pos[0],
                any(start <= tuple(m.start_pos) < end for start, end in spans),
            )
            for item in db.work_items
            for m in item.mutations
        ]


def _bin(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


def _clone(index: int) -> Path:
    clone = WORK / f"work-{index}"
    shutil.rmtree(clone, ignore_errors=True)
    subprocess.run(["git", "clone", "--quiet", "--shared", str(ROOT), str(clone)], check=True)
    return clone


def _command(module: str, clone: Path, worker: int) -> str:
    """The shell command that runs ``module``'s tests in ``clone``: on SQLite, and then on PostgreSQL too
    for a module with code only PostgreSQL runs (its SQLite paths need the first run)."""
    tests = " ".join(MODULES[module])
    pytest = f"{_bin('pytest')} -x -q -p no:cacheprovider -p no:randomly {tests}"
    runs = [pytest]
    server = os.environ.get("MUTATION_POSTGRES", "").rstrip("/")
    if server and module in POSTGRES_MODULES:
        runs.append(f"DATABASE_URL={server}/lineage_mutation_{worker} {pytest}")
    script = f"cd {clone} && " + " && ".join(runs)
    return (
        "env -u DATABASE_URL -u DATABASE_MIGRATE_URL -u REDIS_URL -u LINEAGE_REQUIRE_SERVICES "
        f"sh -c {shlex.quote(script)}"
    )


def _baseline(module: str, clone: Path) -> None:
    """The module's tests must pass without a mutant, or every mutant would look killed."""
    from cosmic_ray.testing import run_tests
    from cosmic_ray.work_item import TestOutcome

    outcome, output = run_tests(_command(module, clone, 0), 1200)
    if outcome != TestOutcome.SURVIVED:
        sys.exit(f"{module}: its tests fail without any mutant; fix them first\n{output[-3000:]}")


def _test(mutant: Mutant, clone: Path, worker: int) -> tuple[Mutant, str, str]:
    """Mutate ``mutant`` in ``clone``, run its module's tests there; 'killed' or 'survived' and the diff."""
    from cosmic_ray.mutating import mutate_and_test
    from cosmic_ray.work_item import MutationSpec, TestOutcome, WorkerOutcome

    spec = MutationSpec(clone / mutant.module, mutant.operator, mutant.occurrence, (0, 0), (0, 1))
    result = mutate_and_test([spec], _command(mutant.module, clone, worker), 600)
    if result.worker_outcome == WorkerOutcome.NO_TEST:
        return mutant, "not a mutant", ""
    if result.worker_outcome != WorkerOutcome.NORMAL or result.test_outcome == TestOutcome.INCOMPETENT:
        return mutant, "error", result.output or ""
    outcome = "killed" if result.test_outcome == TestOutcome.KILLED else "survived"
    return mutant, outcome, result.diff or ""


def main() -> int:
    sample = int(os.environ.get("MUTATION_SAMPLE", "30"))
    seed = int(os.environ.get("MUTATION_SEED", "6962"))
    workers = max(1, int(os.environ.get("MUTATION_WORKERS", "2")))
    wanted = [m for m in os.environ.get("MUTATION_MODULES", "").split(",") if m] or list(MODULES)
    unknown = set(wanted) - set(MODULES)
    if unknown:
        print(f"unknown module(s): {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    WORK.mkdir(parents=True, exist_ok=True)
    equivalents = _equivalents()
    started = time.monotonic()

    chosen: list[Mutant] = []
    for module in wanted:
        mutants = _listed(module)
        picked = mutants if sample <= 0 or sample >= len(mutants) else random.Random(seed).sample(mutants, sample)
        print(f"{module}: {len(mutants)} mutants, {len(picked)} sampled")
        chosen.extend(sorted(picked, key=lambda m: (m.operator, m.occurrence)))
    to_run = [m for m in chosen if not any(rule.covers(m) for rule in equivalents)]
    equivalent = len(chosen) - len(to_run)

    clones = [_clone(i) for i in range(workers)]
    for module in wanted:
        _baseline(module, clones[0])
    outcomes: dict[str, int] = {"killed": 0, "survived": 0, "error": 0, "not a mutant": 0}
    survivors: list[str] = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        # Each worker thread owns one clone, so two mutants never share a working tree.
        free = list(enumerate(clones))
        pending: dict[concurrent.futures.Future[tuple[Mutant, str, str]], tuple[int, Path]] = {}
        queue = list(to_run)
        while queue or pending:
            while queue and free:
                worker, clone = free.pop()
                pending[pool.submit(_test, queue.pop(0), clone, worker)] = (worker, clone)
            done, _ = concurrent.futures.wait(pending, return_when=concurrent.futures.FIRST_COMPLETED)
            for future in done:
                free.append(pending.pop(future))
                mutant, outcome, detail = future.result()
                outcomes[outcome] += 1
                print(f"  {outcome:9} {mutant.module}:{mutant.line} {mutant.operator} #{mutant.occurrence}", flush=True)
                if outcome in ("survived", "error"):
                    where = f"{mutant.module} {mutant.operator} {mutant.occurrence} (line {mutant.line})"
                    survivors.append(f"{outcome}: {where}\n{detail}")
    for clone in clones:
        shutil.rmtree(clone, ignore_errors=True)
    (WORK / "survivors.txt").write_text("\n".join(survivors))
    total = len(chosen) - outcomes["not a mutant"]
    minutes = (time.monotonic() - started) / 60
    print(f"{minutes:.1f} min, {workers} workers, seed {seed}; survivors and errors in {WORK / 'survivors.txt'}")
    if outcomes["error"]:
        print(f"{outcomes['error']} mutants could not be tested (counted as survived)")
    survived = outcomes["survived"] + outcomes["error"]
    print(f"{total} mutants, {outcomes['killed']} killed, {equivalent} equivalent, {survived} survived")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Mapping an MLflow run to the chain, on MLflow's own entity objects (no server needed for this part)."""

from __future__ import annotations

from mlflow.entities import Dataset, DatasetInput, InputTag, Run, RunData, RunInfo, RunInputs, RunTag

from releases.sync.mapping import run_data


def _run(tags: dict[str, str], inputs: list[tuple[str, str, str]]) -> Run:
    info = RunInfo(
        run_id="r1",
        experiment_id="7",
        user_id="dana",
        status="FINISHED",
        start_time=1_700_000_000_000,
        end_time=None,
        lifecycle_stage="active",
        run_name="churn-v42",
    )
    data = RunData(tags=[RunTag(k, v) for k, v in tags.items()])
    dataset_inputs = [
        DatasetInput(
            Dataset(name=name, digest=digest, source_type="local", source="file:///d.csv"),
            tags=[InputTag("mlflow.data.context", context)],
        )
        for name, digest, context in inputs
    ]
    return Run(info, data, RunInputs(dataset_inputs=dataset_inputs))


def test_declared_versions_covered_by_an_input_are_not_counted_twice():
    run = _run(
        {"dataset_version": "churn-train:18,churn-eval:3", "git_commit": "8d4f2c1"},
        [("churn-train", "abc", "training"), ("churn-eval:3", "def", "evaluation")],
    )
    mapped = run_data(run, {"7": "churn"})
    assert sorted((ref.key, ref.context, ref.digest) for ref in mapped.datasets) == [
        ("churn-eval:3", "evaluation", "def"),
        ("churn-train:18", "training", "abc"),
    ]
    assert mapped.commit_sha == "8d4f2c1"
    assert mapped.experiment_name == "churn"
    assert mapped.warnings == []


def test_declared_version_without_an_input_is_a_training_use_and_garbage_is_a_warning():
    mapped = run_data(_run({"dataset_version": "churn-train:17,garbage"}, []), {})
    assert [(ref.key, ref.context) for ref in mapped.datasets] == [("churn-train:17", "training")]
    assert len(mapped.warnings) == 1
    assert "garbage" in mapped.warnings[0]

from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from releases import services
from releases.management.base import ServiceCommand
from releases.models import Endpoint


class Command(ServiceCommand):
    help = (
        "Declare an endpoint: its environment, the registered model it serves and the MLflow alias serving follows. "
        "The same declaration again changes nothing; other values under its name are refused."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("name", help="endpoint name, e.g. churn-scoring")
        parser.add_argument("--environment", required=True, help=", ".join(Endpoint.Environment.values))
        parser.add_argument("--model", default="", help="the registered model it serves, e.g. churn-model")
        parser.add_argument("--alias", default="", help="the model's MLflow alias serving follows, e.g. production")
        parser.add_argument("--description", default="")

    def handle(self, *args: Any, **options: Any) -> None:
        by = self.acting_user(options["as_user"])
        endpoint, created = services.declare_endpoint(
            name=options["name"],
            environment=options["environment"],
            registered_model=options["model"],
            mlflow_alias=options["alias"],
            description=options["description"],
            by=by,
        )
        serves = (
            f"follows {endpoint.registered_model}@{endpoint.mlflow_alias}"
            if endpoint.mlflow_alias
            else (f"serves {endpoint.registered_model}" if endpoint.registered_model else "follows no MLflow alias")
        )
        outcome = "created" if created else "already declared with these values, unchanged"
        self.stdout.write(f"{endpoint.name} {outcome} ({endpoint.environment}, {serves})")

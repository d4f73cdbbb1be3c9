"""InfrastructureManager: validate, render, plan, apply and cost an infrastructure spec.

Nothing here talks to a cloud API. A spec becomes Terraform JSON in a directory
(``<home>/infrastructure/<infrastructure_id>/`` unless the spec says ``output_dir``); when a
``terraform`` binary is on ``PATH``, :meth:`plan` and :meth:`apply` run it there and report its
output; otherwise the result says it rendered and did not apply.

Result statuses: ``rendered`` (files written, Terraform not run), ``planned`` (``terraform plan``
succeeded), ``applied`` (``terraform apply`` succeeded), ``failed`` (Terraform returned an error).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ..errors import ConfigError, Problem
from ..settings import Settings, get_settings
from . import costs as cost_model
from .pricing import PriceTable, load_prices
from .render import check_document, document_files, write_directory
from .spec import InfrastructureSpec, as_spec_dict, parse_infrastructure
from .terraform import TerraformDoc, render_spec

Runner = Callable[[list[str], Path], "subprocess.CompletedProcess[str]"]
OUTPUT_TAIL = 4000
TERRAFORM_TIMEOUT_S = 3600


class _CostRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    time_range: str = "last_month"
    breakdown_by_service: bool = True
    cost_optimization_recommendations: bool = True
    infrastructure_id: str | None = None
    spec: Any = None
    modules: dict[str, Any] = Field(default_factory=dict)


def _default_runner(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cmd, cwd=cwd, capture_output=True, text=True, timeout=TERRAFORM_TIMEOUT_S, check=False
    )


class InfrastructureManager:
    """Cloud infrastructure as validated specs, Terraform JSON and cost estimates.

    ``InfrastructureManager(config=None, *, settings=None, prices=None, terraform=None, runner=None)``:
    ``prices`` replaces the shipped price table (a path, dict or :class:`PriceTable`); ``terraform``
    is the binary to run (default: ``terraform`` on ``PATH``); ``runner`` runs it (tests inject one).
    """

    def __init__(
        self,
        config: Mapping[str, Any] | None = None,
        *,
        settings: Settings | None = None,
        prices: Any = None,
        terraform: str | None = None,
        runner: Runner | None = None,
    ) -> None:
        self.config = dict(config or {})
        self.settings = settings or get_settings()
        self.prices: PriceTable = load_prices(prices or self.config.get("prices"))
        self._terraform = terraform or self.config.get("terraform")
        self._runner = runner or _default_runner
        self._known: dict[str, dict[str, Any]] = {}

    # -- spec ------------------------------------------------------------------------------------

    def parse(self, spec: Mapping[str, Any] | str | Path | InfrastructureSpec) -> InfrastructureSpec:
        """The validated spec (a dict, a YAML/JSON path or an already parsed spec)."""
        if isinstance(spec, InfrastructureSpec):
            return spec
        data, source = as_spec_dict(spec)
        return parse_infrastructure(data, source=source, prices=self.prices)

    def _document(self, parsed: InfrastructureSpec) -> TerraformDoc:
        doc = render_spec(parsed)
        broken = check_document(doc.blocks())
        if broken:  # a renderer bug, never the user's fault
            raise RuntimeError("rendered Terraform is inconsistent:\n  " + "\n  ".join(broken))
        return doc

    def validate(self, spec: Mapping[str, Any] | str | Path | InfrastructureSpec) -> dict[str, Any]:
        """Check a spec (one :class:`ConfigError` lists every problem); say what it would create."""
        parsed = self.parse(spec)
        doc = self._document(parsed)
        return {
            "valid": True,
            "infrastructure_id": parsed.infrastructure_id,
            "provider": parsed.cloud_provider,
            "region": parsed.region,
            "resources": doc.addresses,
            "notes": list(doc.notes),
        }

    def output_dir_for(self, parsed: InfrastructureSpec, output_dir: str | Path | None = None) -> Path:
        chosen = output_dir or parsed.output_dir
        if chosen:
            return Path(chosen).expanduser()
        return self.settings.home / "infrastructure" / parsed.infrastructure_id

    # -- render / plan / apply -------------------------------------------------------------------

    def render(
        self, spec: Mapping[str, Any] | str | Path | InfrastructureSpec, output_dir: str | Path | None = None
    ) -> dict[str, Any]:
        """Write the Terraform JSON of a spec to a directory; status ``rendered``."""
        from .. import __version__

        parsed = self.parse(spec)
        doc = self._document(parsed)
        directory = self.output_dir_for(parsed, output_dir)
        estimate = cost_model.estimate(parsed, self.prices)
        header = (
            f"generated by geo-infer-ops {__version__} from infrastructure {parsed.infrastructure_id}; "
            "edit the spec and re-render, not this file"
        )
        metadata = {
            "infrastructure_id": parsed.infrastructure_id,
            "provider": parsed.cloud_provider,
            "region": parsed.region,
            "rendered_at": time.time(),
            "spec": parsed.definition,
            "estimated_monthly_cost": estimate["monthly"],
        }
        files = write_directory(document_files(doc, header), directory, metadata)
        result = {
            "infrastructure_id": parsed.infrastructure_id,
            "status": "rendered",
            "provider": parsed.cloud_provider,
            "region": parsed.region,
            "output_dir": str(directory),
            "files": [str(f) for f in files],
            "resources": doc.addresses,
            "estimated_monthly_cost": estimate["monthly"],
            "breakdown": estimate["items"],
            "by_service": estimate["by_service"],
            "notes": list(doc.notes) + estimate["notes"],
            "message": f"rendered {len(doc.addresses)} resources to {directory}",
        }
        self._known[parsed.infrastructure_id] = {
            "spec": parsed,
            "output_dir": directory,
            "status": "rendered",
        }
        return result

    def terraform_binary(self) -> str | None:
        """The Terraform binary that :meth:`plan` and :meth:`apply` would run, or None."""
        if self._terraform:
            return (
                self._terraform if Path(self._terraform).exists() or shutil.which(self._terraform) else None
            )
        return shutil.which("terraform")

    def _run_terraform(self, result: dict[str, Any], steps: list[list[str]], success: str) -> dict[str, Any]:
        binary = self.terraform_binary()
        directory = Path(result["output_dir"])
        if binary is None:
            result["message"] = (
                f"rendered {len(result['resources'])} resources to {directory} and did not apply: "
                "no terraform "
                "binary on PATH (install Terraform >= 1.5, then run terraform init && terraform plan there)"
            )
            result["terraform"] = None
            return result
        log: list[dict[str, Any]] = []
        for args in steps:
            cmd = [binary, *args]
            try:
                proc = self._runner(cmd, directory)
                code, out = proc.returncode, (proc.stdout or "") + (proc.stderr or "")
            except (OSError, subprocess.SubprocessError) as exc:
                code, out = -1, f"{type(exc).__name__}: {exc}"
            log.append(
                {"command": " ".join(["terraform", *args]), "returncode": code, "output": out[-OUTPUT_TAIL:]}
            )
            if code != 0:
                result.update(
                    status="failed",
                    terraform=log,
                    message=f"terraform {args[0]} failed (exit {code}) in {directory}: "
                    + (out.strip().splitlines() or ["no output"])[-1],
                )
                self._remember(result)
                return result
        result.update(
            status=success, terraform=log, message=f"terraform {steps[-1][0]} succeeded in {directory}"
        )
        self._remember(result)
        return result

    def _remember(self, result: dict[str, Any]) -> None:
        known = self._known.get(result["infrastructure_id"])
        if known is not None:
            known["status"] = result["status"]

    def _write_vars(self, output_dir: str, variables: Mapping[str, Any] | None) -> None:
        if variables:
            path = Path(output_dir) / "terraform.tfvars.json"
            path.write_text(json.dumps(dict(variables), indent=2) + "\n", encoding="utf-8")

    def plan(
        self,
        spec: Mapping[str, Any] | str | Path | InfrastructureSpec,
        output_dir: str | Path | None = None,
        variables: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Render, then ``terraform init`` + ``terraform plan -out=tfplan`` when Terraform is installed.

        ``variables`` (e.g. ``{"certificate_arn": ...}``) are written to ``terraform.tfvars.json``.
        """
        result = self.render(spec, output_dir)
        self._write_vars(result["output_dir"], variables)
        steps = [["init", "-input=false", "-no-color"], ["plan", "-input=false", "-no-color", "-out=tfplan"]]
        return self._run_terraform(result, steps, "planned")

    def apply(
        self,
        spec: Mapping[str, Any] | str | Path | InfrastructureSpec,
        output_dir: str | Path | None = None,
        variables: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Render, plan and ``terraform apply`` the plan when Terraform is installed."""
        result = self.render(spec, output_dir)
        self._write_vars(result["output_dir"], variables)
        steps = [
            ["init", "-input=false", "-no-color"],
            ["plan", "-input=false", "-no-color", "-out=tfplan"],
            ["apply", "-input=false", "-no-color", "-auto-approve", "tfplan"],
        ]
        return self._run_terraform(result, steps, "applied")

    def provision_infrastructure(
        self,
        spec: Mapping[str, Any] | str | Path | InfrastructureSpec,
        *,
        apply: bool = False,
        variables: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Validate and render a spec; with Terraform installed also plan it (apply it with ``apply=True``).

        Returns ``infrastructure_id``, ``status``, ``provider``, ``output_dir``, ``resources``,
        ``estimated_monthly_cost`` (USD/month), ``message``, ``breakdown`` and ``by_service``.
        """
        if self.terraform_binary() is None:
            result = self.render(spec)
            return self._run_terraform(result, [], "rendered")
        return self.apply(spec, variables=variables) if apply else self.plan(spec, variables=variables)

    # -- costs -----------------------------------------------------------------------------------

    def _known_specs(self, request: _CostRequest) -> list[InfrastructureSpec]:
        if request.spec is not None:
            return [self.parse(request.spec)]
        if not self._known:
            root = self.settings.home / "infrastructure"
            for meta in sorted(root.glob("*/geo-infer-ops.json")) if root.is_dir() else []:
                try:
                    spec = parse_infrastructure(
                        json.loads(meta.read_text(encoding="utf-8"))["spec"], prices=self.prices
                    )
                except Exception:  # an old or edited file: skip it, do not fail the report
                    continue
                self._known[spec.infrastructure_id] = {
                    "spec": spec,
                    "output_dir": meta.parent,
                    "status": "rendered",
                }
        specs = {k: v["spec"] for k, v in self._known.items()}
        if request.infrastructure_id is not None:
            if request.infrastructure_id not in specs:
                raise ConfigError(
                    [
                        Problem(
                            "infrastructure_id",
                            f"no infrastructure {request.infrastructure_id!r}",
                            f"use one of: {', '.join(specs) or '(none provisioned yet)'}",
                        )
                    ]
                )
            return [specs[request.infrastructure_id]]
        return list(specs.values())

    def analyze_costs(self, config: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Monthly cost of the provisioned (or given) infrastructure, per resource and service, with advice.

        ``config``: ``time_range`` (``last_month``, ``last_week``, ``last_day``, ``last_30_days``, ...; the
        window of the utilisation history and of ``period_cost``), ``breakdown_by_service``,
        ``cost_optimization_recommendations``, and optionally ``spec`` (dict or file),
        ``infrastructure_id`` and ``modules`` (the deployment's ``{MODULE: {replicas, resources}}``).
        """
        from .._validation import validate_into as validate_model

        problems: list[Problem] = []
        request = validate_model(_CostRequest, dict(config or {}), "", problems)
        if request is not None and request.time_range not in cost_model.TIME_RANGES:
            problems.append(
                Problem(
                    "time_range",
                    f"unknown time range {request.time_range!r}",
                    f"use one of: {', '.join(cost_model.TIME_RANGES)}",
                )
            )
        if problems:
            raise ConfigError(problems)
        hours = cost_model.TIME_RANGES[request.time_range]
        specs = self._known_specs(request)
        infrastructures, resources, recommendations, notes = [], [], [], []
        utilisation_report: list[dict[str, Any]] = []
        for spec in specs:
            est = cost_model.estimate(spec, self.prices)
            entry = {
                k: est[k]
                for k in ("infrastructure_id", "provider", "region", "price_region", "monthly", "by_service")
            }
            for item in est["items"]:
                resources.append({"infrastructure_id": spec.infrastructure_id, **item})
            notes += [f"{spec.infrastructure_id}: {n}" for n in est["notes"]]
            modules = request.modules or spec.modules
            capacity = cost_model.module_capacity(spec, self.prices, modules) if modules else None
            if capacity:
                entry["module_capacity"] = capacity
            if request.cost_optimization_recommendations:
                usage = cost_model.read_cpu_utilisation(
                    self.settings.resolved_database_url, hours, spec.infrastructure_id
                )
                utilisation_report.append({"infrastructure_id": spec.infrastructure_id, **usage})
                for rec in cost_model.recommendations(spec, self.prices, usage):
                    recommendations.append({"infrastructure_id": spec.infrastructure_id, **rec})
            infrastructures.append(entry)
        monthly = round(sum(i["monthly"] for i in infrastructures), 2)
        result: dict[str, Any] = {
            "time_range": request.time_range,
            "period_hours": hours,
            "currency": "USD",
            "estimated_monthly_cost": monthly,
            "estimated_period_cost": round(monthly * hours / self.prices.hours_per_month, 2),
            "infrastructures": infrastructures,
            "resources": resources,
            "price_table": self.prices.to_dict(),
            "notes": notes,
            "message": (
                f"estimate from list prices ({self.prices.source.split(';')[0]}): ${monthly:,.2f}/month for "
                f"{len(infrastructures)} infrastructure(s)"
                if infrastructures
                else "no infrastructure provisioned yet: call provision_infrastructure(spec) or pass 'spec'"
            ),
        }
        if request.breakdown_by_service:
            result["by_service"] = cost_model.by_service(resources)
        if request.cost_optimization_recommendations:
            result["recommendations"] = recommendations
            result["potential_monthly_savings"] = round(
                sum(
                    max(0.0, r.get("monthly_savings", 0.0))
                    for r in recommendations
                    if r["kind"] != "reserved_capacity"
                )
                + max(
                    [r["monthly_savings"] for r in recommendations if r["kind"] == "reserved_capacity"]
                    or [0.0]
                ),
                2,
            )
            result["utilisation"] = utilisation_report
        return result

"""Infrastructure: spec validation, Terraform JSON (structure + snapshots), costs, CLI, terraform runs."""

from __future__ import annotations

import copy
import json
import os
import stat
import time
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from geo_infer_ops.errors import ConfigError
from geo_infer_ops.infrastructure import InfrastructureManager
from geo_infer_ops.infrastructure.pricing import load_prices
from geo_infer_ops.infrastructure.render import REQUIRED_KEYS, check_document, references
from geo_infer_ops.infrastructure.spec import parse_infrastructure, parse_size
from geo_infer_ops.infrastructure.terraform import render_spec

ROOT = Path(__file__).resolve().parents[1]
SNAPSHOTS = Path(__file__).parent / "snapshots" / "infrastructure"
UPDATE = os.environ.get("GEO_INFER_OPS_UPDATE_SNAPSHOTS") == "1"

SPEC_EXAMPLE = {
    "cloud_provider": "aws",
    "region": "us-west-2",
    "vpc": {
        "cidr": "10.0.0.0/16",
        "subnets": [
            {"cidr": "10.0.1.0/24", "availability_zone": "us-west-2a"},
            {"cidr": "10.0.2.0/24", "availability_zone": "us-west-2b"},
        ],
    },
    "compute": {"instance_type": "t3.large", "auto_scaling_group": True, "load_balancer": True},
    "storage": {"s3_bucket": "geo-infer-data", "efs_volume": "100Gi", "backup_strategy": "daily"},
    "security": {"vpc_endpoints": True, "encryption_at_rest": True, "encryption_in_transit": True},
}
AWS_FULL = {
    **SPEC_EXAMPLE,
    "vpc": {
        "cidr": "10.0.0.0/16",
        "nat_gateway": True,
        "subnets": [
            {"cidr": "10.0.1.0/24", "availability_zone": "us-west-2a", "name": "public_a"},
            {"cidr": "10.0.2.0/24", "availability_zone": "us-west-2b", "name": "public_b"},
            {"cidr": "10.0.11.0/24", "availability_zone": "us-west-2a", "public": False, "name": "private_a"},
            {"cidr": "10.0.12.0/24", "availability_zone": "us-west-2b", "public": False, "name": "private_b"},
        ],
    },
    "storage": {
        **SPEC_EXAMPLE["storage"],
        "s3_size": "2Ti",
        "archive_after_days": 60,
        "backup_strategy": "weekly",
    },
    "security": {"vpc_endpoints": True, "encryption_at_rest": False, "encryption_in_transit": False},
}
GCP = yaml.safe_load((ROOT / "examples" / "multi_cloud.yaml").read_text())
AZURE = {
    "cloud_provider": "azure",
    "region": "eastus",
    "vpc": {
        "cidr": "10.30.0.0/16",
        "subnets": [
            {"cidr": "10.30.1.0/24", "availability_zone": "1"},
            {"cidr": "10.30.2.0/24", "availability_zone": "2", "public": False},
        ],
        "nat_gateway": True,
    },
    "compute": {"instance_type": "Standard_D4s_v5", "min_instances": 2, "max_instances": 5},
    "storage": {"s3_bucket": "geo-infer-app", "efs_volume": "200Gi", "archive_after_days": 30},
    "security": {"vpc_endpoints": True},
}
SPECS = {"aws_spec_example": SPEC_EXAMPLE, "aws_full": AWS_FULL, "gcp": GCP, "azure": AZURE}


@pytest.fixture
def manager(settings, monkeypatch, tmp_path) -> InfrastructureManager:
    """A manager that finds no terraform binary (PATH without it)."""
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    return InfrastructureManager(settings=settings)


def problems_of(spec: dict) -> dict[str, str]:
    with pytest.raises(ConfigError) as info:
        parse_infrastructure(spec)
    return {p.path: f"{p.message} | {p.fix}" for p in info.value.problems}


# ---------------------------------------------------------------------------
# the spec's snippet, as written


def test_spec_snippet_runs_as_written(manager: InfrastructureManager, home: Path) -> None:
    infrastructure = manager.provision_infrastructure(copy.deepcopy(SPEC_EXAMPLE))
    assert infrastructure["status"] == "rendered"
    assert "did not apply" in infrastructure["message"]
    assert infrastructure["provider"] == "aws"
    out = Path(infrastructure["output_dir"])
    assert out == home / "infrastructure" / infrastructure["infrastructure_id"]
    assert {p.name for p in out.iterdir()} >= {
        "main.tf.json",
        "variables.tf.json",
        "outputs.tf.json",
        "versions.tf.json",
    }
    assert "aws_vpc.main" in infrastructure["resources"]
    assert (
        isinstance(infrastructure["estimated_monthly_cost"], float)
        and infrastructure["estimated_monthly_cost"] > 0
    )
    cost_analysis = manager.analyze_costs(
        {"time_range": "last_month", "breakdown_by_service": True, "cost_optimization_recommendations": True}
    )
    assert cost_analysis["estimated_monthly_cost"] == infrastructure["estimated_monthly_cost"]
    assert cost_analysis["by_service"]["EC2"] > 0
    assert {r["kind"] for r in cost_analysis["recommendations"]} >= {"reserved_capacity"}
    assert "no utilisation history" in cost_analysis["utilisation"][0]["message"]


def test_analyze_costs_reads_rendered_infrastructure_from_home(manager, settings) -> None:
    manager.render(SPEC_EXAMPLE)
    fresh = InfrastructureManager(settings=settings)
    report = fresh.analyze_costs({})
    assert len(report["infrastructures"]) == 1


def test_output_dir_from_spec(manager, tmp_path) -> None:
    result = manager.render({**SPEC_EXAMPLE, "output_dir": str(tmp_path / "tf")})
    assert result["output_dir"] == str(tmp_path / "tf")
    assert (tmp_path / "tf" / "main.tf.json").exists()


# ---------------------------------------------------------------------------
# rendered JSON: structure


@pytest.mark.parametrize("name", sorted(SPECS))
def test_rendered_json_is_structurally_sound(name: str) -> None:
    doc = render_spec(parse_infrastructure(SPECS[name]))
    blocks = doc.blocks()
    assert check_document(blocks) == []
    for rtype in blocks["resource"]:
        assert rtype in REQUIRED_KEYS
    json.dumps(blocks)  # plain JSON values only


def test_reference_checker_catches_dangling_references() -> None:
    blocks = {
        "variable": {"region": {"type": "string", "description": "x"}},
        "resource": {
            "aws_subnet": {
                "a": {
                    "vpc_id": "${aws_vpc.missing.id}",
                    "cidr_block": "${var.nope}",
                    "availability_zone": "x",
                }
            },
            "aws_vpc": {"main": {"cidr_block": "10.0.0.0/16", "depends_on": ["aws_internet_gateway.gone"]}},
        },
    }
    problems = "\n".join(check_document(blocks))
    assert (
        "aws_vpc.missing" in problems and "var.nope" in problems and "aws_internet_gateway.gone" in problems
    )
    assert references('${var.a != "" ? var.a : data.aws_ami.x.id}') == ["var.a", "var.a", "data.aws_ami.x"]
    assert references("$${not.a_ref} and ${base64encode(local.u)}") == ["local.u"]


def test_aws_render_has_everything_the_issue_lists(manager) -> None:
    result = manager.render(SPEC_EXAMPLE)
    main = json.loads((Path(result["output_dir"]) / "main.tf.json").read_text())
    assert main["//"].startswith("generated by geo-infer-ops")
    res = main["resource"]
    for rtype in (
        "aws_vpc", "aws_subnet", "aws_internet_gateway", "aws_route_table", "aws_route_table_association",
        "aws_security_group", "aws_launch_template", "aws_autoscaling_group", "aws_lb", "aws_lb_target_group",
        "aws_lb_listener", "aws_s3_bucket", "aws_s3_bucket_server_side_encryption_configuration",
        "aws_s3_bucket_versioning", "aws_s3_bucket_public_access_block", "aws_efs_file_system",
        "aws_efs_mount_target", "aws_backup_vault", "aws_backup_plan", "aws_backup_selection",
        "aws_vpc_endpoint",
    ):  # fmt: skip
        assert rtype in res, rtype
    assert res["aws_efs_file_system"]["data"]["encrypted"] is True
    assert res["aws_lb_target_group"]["app"]["health_check"]["path"] == "/healthz"
    assert res["aws_vpc_endpoint"]["s3"]["vpc_endpoint_type"] == "Gateway"
    assert res["aws_backup_plan"]["main"]["rule"][0]["schedule"] == "cron(0 5 * * ? *)"
    assert len(res["aws_efs_mount_target"]) == 2  # one per zone
    variables = json.loads((Path(result["output_dir"]) / "variables.tf.json").read_text())["variable"]
    assert variables["region"]["default"] == "us-west-2"
    outputs = json.loads((Path(result["output_dir"]) / "outputs.tf.json").read_text())["output"]
    assert "load_balancer_dns_name" in outputs


def test_efs_mount_targets_one_per_zone_private_first() -> None:
    doc = render_spec(parse_infrastructure(AWS_FULL))
    assert sorted(doc.resource["aws_efs_mount_target"]) == ["private_a", "private_b"]
    assert "aws_nat_gateway" in doc.resource
    assert doc.resource["aws_s3_bucket_server_side_encryption_configuration"]["data"]["rule"][0][
        "apply_server_side_encryption_by_default"
    ] == {"sse_algorithm": "AES256"}


@pytest.mark.parametrize("name", sorted(SPECS))
def test_snapshot(name: str) -> None:
    blocks = render_spec(parse_infrastructure(SPECS[name])).blocks()
    path = SNAPSHOTS / f"{name}.tf.json"
    text = json.dumps(blocks, indent=2, sort_keys=True) + "\n"
    if UPDATE or not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        if not UPDATE:
            pytest.skip(f"snapshot {path.name} written; run again")
    assert json.loads(path.read_text()) == json.loads(text), (
        f"rendered {name} differs from {path}; set GEO_INFER_OPS_UPDATE_SNAPSHOTS=1 to accept the change"
    )


@pytest.mark.skipif(not __import__("shutil").which("terraform"), reason="terraform is not installed")
@pytest.mark.parametrize("name", sorted(SPECS))
def test_terraform_parses_rendered_configuration(name: str, tmp_path: Path, settings) -> None:
    """``terraform providers`` reads every file without network: the JSON syntax is Terraform's."""
    import subprocess

    manager = InfrastructureManager(settings=settings)
    out = manager.render(SPECS[name], tmp_path / name)["output_dir"]
    proc = subprocess.run(
        ["terraform", "providers", "-no-color"], cwd=out, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


# ---------------------------------------------------------------------------
# validation: every problem, with its path


def test_validation_lists_every_problem_with_its_path() -> None:
    bad = {
        "cloud_provider": "aws",
        "region": "us-west-2",
        "vpc": {
            "cidr": "10.0.0.0/16",
            "subnets": [
                {"cidr": "10.0.1.0/24", "availability_zone": "us-west-2a"},
                {"cidr": "10.0.1.128/25", "availability_zone": "us-east-1a"},
                {"cidr": "10.1.0.0/24", "availability_zone": "us-west-2b"},
                {"cidr": "10.0.3.1/24", "availability_zone": "us-west-2b"},
                {"cidr": "banana", "availability_zone": "us-west-2b"},
            ],
        },
        "compute": {"instance_type": "t3.larg"},
        "storage": {"s3_bucket": "Geo_Infer..Data", "efs_volume": "100 parsecs", "s3_size": "100"},
        "security": {"vpc_endpoint": True},
    }
    found = problems_of(bad)
    assert "overlaps vpc.subnets[0]" in found["vpc.subnets[1].cidr"]
    assert "belongs to region us-east-1" in found["vpc.subnets[1].availability_zone"]
    assert "outside the VPC" in found["vpc.subnets[2].cidr"]
    assert "host bits" in found["vpc.subnets[3].cidr"] and "10.0.3.0/24" in found["vpc.subnets[3].cidr"]
    assert "not an IPv4 CIDR" in found["vpc.subnets[4].cidr"]
    assert "did you mean 't3.large'" in found["compute.instance_type"]
    assert "illegal bucket name" in found["storage.s3_bucket"]
    assert "unknown unit" in found["storage.efs_volume"]
    assert "no unit" in found["storage.s3_size"]
    assert "did you mean 'vpc_endpoints'" in found["security.vpc_endpoint"]
    assert len(found) == 10


def test_validation_other_providers_and_regions() -> None:
    found = problems_of({**GCP, "region": "us-centrall", "compute": {"instance_type": "t3.large"}})
    assert "did you mean 'us-central1'" in found["region"]
    assert "is an aws type" in found["compute.instance_type"]
    found = problems_of(
        {**AZURE, "vpc": {**AZURE["vpc"], "subnets": [{"cidr": "10.30.1.0/24", "availability_zone": "4"}]}}
    )
    assert "not an availability zone of eastus" in found["vpc.subnets[0].availability_zone"]
    found = problems_of({**SPEC_EXAMPLE, "cloud_provider": "gcp"})
    assert "is an aws region" in found["region"]


def test_alb_needs_two_zones_and_counts_are_consistent() -> None:
    one_zone = copy.deepcopy(SPEC_EXAMPLE)
    one_zone["vpc"]["subnets"][1]["availability_zone"] = "us-west-2a"
    one_zone["compute"].update(min_instances=5, max_instances=3)
    found = problems_of(one_zone)
    assert "two availability zones" in found["vpc.subnets"]
    assert "below min_instances" in found["compute.max_instances"]


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("100Gi", 100 * 1024**3),
        ("1.5Ti", int(1.5 * 1024**4)),
        ("500GB", 500 * 10**9),
        ("10 MiB", 10 * 1024**2),
    ],
)
def test_parse_size(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["100", "0Gi", "-1Gi", "1Xi", 100, None, "Gi"])
def test_parse_size_rejects(text) -> None:
    with pytest.raises(ValueError):
        parse_size(text)


@pytest.mark.parametrize(
    "name",
    ["ab", "a" * 64, "-abc", "abc-", "my..bucket", "192.168.1.1", "xn--abc", "abc-s3alias", "My-Bucket"],
)
def test_illegal_s3_bucket_names(name: str) -> None:
    found = problems_of({**SPEC_EXAMPLE, "storage": {"s3_bucket": name}})
    assert "illegal bucket name" in found["storage.s3_bucket"]


# ---------------------------------------------------------------------------
# costs


def test_cost_known_answer_two_t3_large_us_west_2(manager) -> None:
    price = load_prices().region("aws", "us-west-2").instance_hourly("t3.large")
    assert price == 0.0832
    spec = {
        **SPEC_EXAMPLE,
        "storage": {},
        "security": {"encryption_at_rest": False},
        "compute": {"instance_type": "t3.large", "load_balancer": False, "min_instances": 2},
    }
    spec["vpc"] = {**SPEC_EXAMPLE["vpc"]}
    report = manager.analyze_costs({"spec": spec})
    ec2 = next(r for r in report["resources"] if r["service"] == "EC2")
    assert ec2["monthly"] == round(2 * 0.0832 * 730, 2) == 121.47
    ebs = next(r for r in report["resources"] if r["service"] == "EBS")
    assert ebs["monthly"] == 2 * 50 * 0.08
    assert report["estimated_monthly_cost"] == round(2 * 0.0832 * 730 + 8.0, 2)
    assert report["by_service"] == {"EC2": 121.47, "EBS": 8.0}


def test_cost_period_and_unknown_keys(manager) -> None:
    report = manager.analyze_costs({"spec": SPEC_EXAMPLE, "time_range": "last_week"})
    assert report["estimated_period_cost"] == round(report["estimated_monthly_cost"] * 168 / 730, 2)
    with pytest.raises(ConfigError) as info:
        manager.analyze_costs({"time_range": "last_fortnight", "breakdown_by_servce": True})
    paths = {p.path for p in info.value.problems}
    assert paths == {"breakdown_by_servce"} or paths == {"breakdown_by_servce", "time_range"}


def test_rightsizing_from_metric_samples(manager, settings) -> None:
    from sqlalchemy import Column, Float, Integer, MetaData, String, Table, Text, create_engine

    engine = create_engine(settings.resolved_database_url)
    settings.home.mkdir(parents=True, exist_ok=True)
    meta = MetaData()
    samples = Table(
        "metric_samples", meta,
        Column("id", Integer, primary_key=True), Column("name", String(200)), Column("labels", Text),
        Column("ts", Float), Column("value", Float),
    )  # fmt: skip
    meta.create_all(engine)
    now = time.time()
    with engine.begin() as conn:
        conn.execute(
            samples.insert(),
            [
                {"name": "cpu_usage", "labels": "{}", "ts": now - i * 60, "value": v}
                for i, v in enumerate([10, 14, 12])
            ],
        )
        conn.execute(
            samples.insert(), [{"name": "cpu_usage", "labels": "{}", "ts": now - 90 * 86400, "value": 99.0}]
        )
        conn.execute(samples.insert(), [{"name": "memory_usage", "labels": "{}", "ts": now, "value": 99.0}])
    engine.dispose()
    report = manager.analyze_costs({"spec": SPEC_EXAMPLE})
    assert report["utilisation"][0]["average_cpu"] == 12.0
    rightsizing = [r for r in report["recommendations"] if r["kind"] == "rightsizing"]
    assert rightsizing and rightsizing[0]["to"] == "t3.medium"
    saving = round((0.0832 - 0.0416) * 2 * 730, 2)
    assert rightsizing[0]["monthly_savings"] == saving
    assert f"average CPU 12% on t3.large -> t3.medium saves ${saving:,.2f}/month" == rightsizing[0]["message"]


def test_module_capacity(manager) -> None:
    report = manager.analyze_costs({"spec": GCP})
    capacity = report["infrastructures"][0]["module_capacity"]
    assert capacity["cpu"] == 10 and capacity["instances_needed"] == 2


def test_price_table_states_source_and_date() -> None:
    data = json.loads((ROOT / "src/geo_infer_ops/infrastructure/prices.json").read_text())
    assert "approximate list prices as of" in data["source"] and "on-demand, Linux" in data["source"]
    assert data["as_of"]


# ---------------------------------------------------------------------------
# terraform: absent, present (a fake binary), failing


def _fake_terraform(tmp_path: Path, code: int = 0) -> Path:
    binary = tmp_path / "fakebin" / "terraform"
    binary.parent.mkdir(exist_ok=True)
    binary.write_text(f'#!/bin/sh\necho "fake terraform $*"\necho "$*" >> calls.log\nexit {code}\n')
    binary.chmod(binary.stat().st_mode | stat.S_IEXEC)
    return binary


def test_plan_without_terraform_renders_and_says_so(manager) -> None:
    result = manager.plan(SPEC_EXAMPLE)
    assert result["status"] == "rendered" and result["terraform"] is None
    assert "did not apply" in result["message"] and "no terraform binary" in result["message"]


def test_plan_and_apply_with_terraform(settings, tmp_path, monkeypatch) -> None:
    binary = _fake_terraform(tmp_path)
    monkeypatch.setenv("PATH", str(binary.parent))
    manager = InfrastructureManager(settings=settings)
    planned = manager.provision_infrastructure(SPEC_EXAMPLE, variables={"certificate_arn": "arn:x"})
    assert planned["status"] == "planned", planned["message"]
    out = Path(planned["output_dir"])
    assert json.loads((out / "terraform.tfvars.json").read_text()) == {"certificate_arn": "arn:x"}
    applied = manager.apply(SPEC_EXAMPLE)
    assert applied["status"] == "applied"
    calls = (out / "calls.log").read_text().splitlines()
    assert [c.split()[0] for c in calls] == ["init", "plan", "init", "plan", "apply"]


def test_terraform_failure_is_reported(settings, tmp_path) -> None:
    manager = InfrastructureManager(settings=settings, terraform=str(_fake_terraform(tmp_path, code=1)))
    result = manager.plan(SPEC_EXAMPLE)
    assert result["status"] == "failed" and "terraform init failed (exit 1)" in result["message"]


# ---------------------------------------------------------------------------
# CLI


@pytest.fixture
def runner(monkeypatch, tmp_path) -> CliRunner:
    empty = tmp_path / "cli-empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    return CliRunner()


def _invoke(runner: CliRunner, *args: str):
    from geo_infer_ops.cli import app

    return runner.invoke(app, ["infra", *args])


def test_cli_validate_render_plan_cost(runner, tmp_path) -> None:
    example = str(ROOT / "examples" / "infrastructure.yaml")
    result = _invoke(runner, "validate", example)
    assert result.exit_code == 0 and "is valid" in result.stdout
    data = json.loads(_invoke(runner, "validate", example, "--json").stdout)
    assert data["valid"] and "aws_vpc.main" in data["resources"]
    rendered = json.loads(_invoke(runner, "render", example, "-o", str(tmp_path / "out"), "--json").stdout)
    assert rendered["status"] == "rendered" and (tmp_path / "out" / "main.tf.json").exists()
    planned = _invoke(runner, "plan", example, "-o", str(tmp_path / "out"))
    assert planned.exit_code == 0 and "did not apply" in planned.stdout
    table = _invoke(runner, "cost", example)
    assert table.exit_code == 0 and "t3.large" in table.stdout and "$181.90" in table.stdout
    csv_out = _invoke(runner, "cost", example, "--csv").stdout.splitlines()
    assert csv_out[0].startswith("infrastructure_id,resource,service")
    assert csv_out[-1].endswith("181.90")
    cost_json = json.loads(_invoke(runner, "cost", example, "--json").stdout)
    assert cost_json["estimated_monthly_cost"] == 181.9


def test_cli_bad_input_exit_2(runner, tmp_path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**SPEC_EXAMPLE, "compute": {"instance_type": "t3.huge"}}))
    result = _invoke(runner, "validate", str(bad), "--json")
    assert result.exit_code == 2
    assert json.loads(result.stdout)["problems"][0]["path"] == "compute.instance_type"
    assert _invoke(runner, "render", str(tmp_path / "missing.yaml")).exit_code == 2
    assert (
        _invoke(runner, "plan", str(ROOT / "examples" / "infrastructure.yaml"), "--var", "novalue").exit_code
        == 2
    )


def test_cli_plan_failure_exit_1(tmp_path, monkeypatch) -> None:
    binary = _fake_terraform(tmp_path, code=1)
    monkeypatch.setenv("PATH", str(binary.parent))
    result = _invoke(
        CliRunner(), "plan", str(ROOT / "examples" / "infrastructure.yaml"), "-o", str(tmp_path / "o")
    )
    assert result.exit_code == 1

"""``geo-infer-ops infra validate | render | plan | cost FILE``.

Only Typer and Rich load at import time; the manager, pydantic and the renderers load inside
the commands. Exit codes: ``0`` success, ``1`` Terraform failed (or an unexpected error),
``2`` bad input (an invalid spec, a missing file). ``--json`` prints one JSON document.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..cli_support import EXIT_FAILED
from ..cli_support import console as _console
from ..cli_support import guarded as _guarded
from ..cli_support import print_json as _print_json
from ..cli_support import text as _t

app = typer.Typer(
    name="infra",
    help="Validate, render, plan and cost infrastructure specs (Terraform JSON).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)

FileArg = Annotated[Path, typer.Argument(metavar="FILE", help="Infrastructure spec (YAML or JSON).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON instead of tables.")]
OutOpt = Annotated[
    Path | None,
    typer.Option(
        "--output",
        "-o",
        help="Directory of the Terraform files (default: the spec's output_dir or "
        "<home>/infrastructure/<id>).",
    ),
]
VarOpt = Annotated[
    list[str] | None, typer.Option("--var", metavar="NAME=VALUE", help="Terraform variable; repeatable.")
]


def _money(value: float) -> str:
    return f"${value:,.2f}"


def _manager() -> Any:
    from .manager import InfrastructureManager

    return InfrastructureManager()


def _variables(pairs: list[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs or []:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            from ..errors import ConfigError, Problem

            raise ConfigError(
                [Problem("--var", f"{pair!r} is not NAME=VALUE", "write e.g. --var certificate_arn=arn:...")],
                "command line",
            )
        out[name.strip()] = value
    return out


def _result_table(result: dict[str, Any], console: Console) -> None:
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column()
    head.add_row("infrastructure", _t(result["infrastructure_id"]))
    head.add_row("provider", _t(f"{result['provider']} {result['region']}"))
    if "status" in result:
        style = {"failed": "bold red", "rendered": "bold cyan"}.get(result["status"], "bold green")
        head.add_row("status", _t(result["status"], style))
    if "output_dir" in result:
        head.add_row("output", _t(result["output_dir"]))
    if "estimated_monthly_cost" in result:
        head.add_row("estimate", _t(_money(result["estimated_monthly_cost"]) + "/month (list prices)"))
    head.add_row("resources", _t(str(len(result["resources"]))))
    console.print(head)
    table = Table(header_style="bold", title="resources", title_justify="left")
    table.add_column("address", style="cyan", no_wrap=True)
    for address in result["resources"]:
        table.add_row(_t(address))
    console.print(table)
    for note in result.get("notes", []):
        console.print(Text("note: ", style="yellow") + _t(note))
    if result.get("message"):
        console.print(_t(result["message"], "bold" if result.get("status") != "failed" else "bold red"))


@app.command()
@_guarded
def validate(file: FileArg, as_json: JsonOpt = False) -> None:
    """Check a spec: CIDRs, subnets, zones, instance types, bucket names, sizes."""
    result = _manager().validate(file)
    if as_json:
        _print_json(result)
        return
    _result_table(result, _console())
    _console().print(Text(f"✔ {file} is valid", style="bold green"))


@app.command()
@_guarded
def render(file: FileArg, output: OutOpt = None, as_json: JsonOpt = False) -> None:
    """Write the Terraform JSON (*.tf.json, variables, outputs) of a spec to a directory."""
    result = _manager().render(file, output)
    if as_json:
        _print_json(result)
        return
    _result_table(result, _console())


@app.command()
@_guarded
def plan(file: FileArg, output: OutOpt = None, var: VarOpt = None, as_json: JsonOpt = False) -> None:
    """Render, then run terraform init + plan when terraform is on PATH (else: rendered, not applied)."""
    result = _manager().plan(file, output, variables=_variables(var))
    if as_json:
        _print_json(result)
    else:
        console = _console()
        _result_table(result, console)
        for step in result.get("terraform") or []:
            console.print(Text(f"$ {step['command']}  (exit {step['returncode']})", style="dim"))
            if step["returncode"] != 0:
                console.print(_t(step["output"].strip()[-2000:], "red"))
    if result["status"] == "failed":
        raise typer.Exit(EXIT_FAILED)


@app.command()
@_guarded
def cost(
    file: FileArg,
    time_range: Annotated[
        str, typer.Option("--time-range", help="last_month, last_week, last_day, ...")
    ] = "last_month",
    as_json: JsonOpt = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="Print the per-resource estimate as CSV.")] = False,
) -> None:
    """Monthly cost estimate per resource and per service, with rightsizing and storage advice."""
    report = _manager().analyze_costs(
        {
            "spec": str(file),
            "time_range": time_range,
            "breakdown_by_service": True,
            "cost_optimization_recommendations": True,
        }
    )
    if as_json:
        _print_json(report)
        return
    if as_csv:
        import csv

        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(
            [
                "infrastructure_id",
                "resource",
                "service",
                "component",
                "quantity",
                "unit",
                "unit_price",
                "monthly",
            ]
        )
        for r in report["resources"]:
            writer.writerow(
                [
                    r["infrastructure_id"],
                    r["resource"],
                    r["service"],
                    r["component"],
                    r["quantity"],
                    r["unit"],
                    r["unit_price"],
                    f"{r['monthly']:.2f}",
                ]
            )
        writer.writerow(["", "", "", "total", "", "", "", f"{report['estimated_monthly_cost']:.2f}"])
        return
    console = _console()
    table = Table(
        header_style="bold", title=f"monthly estimate · {file.name}", title_justify="left", show_footer=True
    )
    table.add_column("resource", style="cyan", no_wrap=True, footer="total")
    table.add_column("service")
    table.add_column("component", overflow="fold")
    table.add_column("unit price", justify="right")
    table.add_column("per month", justify="right", footer=_money(report["estimated_monthly_cost"]))
    for r in report["resources"]:
        table.add_row(
            _t(r["resource"]),
            _t(r["service"]),
            _t(r["component"]),
            _t(f"{r['unit_price']:g}/{r['unit']}"),
            _money(r["monthly"]),
        )
    console.print(table)
    services = Table(header_style="bold", title="per service", title_justify="left")
    services.add_column("service")
    services.add_column("per month", justify="right")
    for name, value in report.get("by_service", {}).items():
        services.add_row(_t(name), _money(value))
    console.print(services)
    if report.get("recommendations"):
        recs = Table(header_style="bold", title="recommendations", title_justify="left")
        recs.add_column("kind", no_wrap=True)
        recs.add_column("recommendation", overflow="fold")
        recs.add_column("saves / month", justify="right")
        for r in report["recommendations"]:
            recs.add_row(_t(r["kind"]), _t(r["message"]), _money(r.get("monthly_savings", 0.0)))
        console.print(recs)
    for u in report.get("utilisation", []):
        console.print(Text("utilisation: ", style="dim") + _t(u["message"], "dim"))
    for note in report.get("notes", []):
        console.print(Text("note: ", style="yellow") + _t(note))
    console.print(
        Text(
            f"prices: {report['price_table']['source'][:120]}… (as of {report['price_table']['as_of']})",
            style="dim",
        )
    )

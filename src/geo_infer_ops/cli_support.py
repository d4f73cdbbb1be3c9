"""What every command-line module shares: consoles, JSON output and turning errors into exit codes.

Kept free of heavy imports (only typer and rich), like the command modules themselves.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from .errors import GeoInferOpsError, SpecError

F = TypeVar("F", bound=Callable[..., Any])

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
DEBUG_ENV = "GEO_INFER_OPS_DEBUG"


def console(stderr: bool = False) -> Console:
    """A console on stdout/stderr; wide when not a terminal, so that piped tables do not wrap paths."""
    stream = sys.stderr if stderr else sys.stdout
    width = None
    if not isatty(stream) and "COLUMNS" not in os.environ:
        width = 160
    return Console(stderr=stderr, width=width, highlight=False, soft_wrap=False)


def isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except Exception:
        return False


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def text(value: Any, style: str = "") -> Text:
    """User text as a Rich ``Text`` (never parsed as markup)."""
    return Text("" if value is None else str(value), style=style)


def guarded(func: F) -> F:
    """Turn errors into a message and an exit code (2 for bad input, 1 for anything unexpected)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        as_json = bool(kwargs.get("as_json"))
        try:
            return func(*args, **kwargs)
        except (typer.Exit, typer.Abort):
            raise
        except KeyboardInterrupt:
            console(stderr=True).print(Text("interrupted", style="yellow"))
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except Exception as exc:
            if os.environ.get(DEBUG_ENV):
                raise
            code = report_error(exc, as_json)
            raise typer.Exit(code) from None

    return wrapper  # type: ignore[return-value]


def report_error(exc: Exception, as_json: bool) -> int:
    from pydantic import ValidationError

    err = console(stderr=True)
    if isinstance(exc, SpecError):
        if as_json:
            print_json({**exc.to_dict(), "message": str(exc)})
        else:
            where = f" in {exc.source}" if exc.source else ""
            title = f"error: {len(exc.problems)} problem(s) in the {exc.kind}{where}"
            err.print(Text(title, style="bold red"))
            table = Table(show_lines=False, header_style="bold")
            table.add_column("path", style="cyan", no_wrap=True)
            table.add_column("problem", overflow="fold")
            table.add_column("fix", style="green")
            for p in exc.problems:
                table.add_row(text(p.path or "<root>"), text(p.message), text(p.fix))
            err.print(table)
        return EXIT_USAGE
    if isinstance(exc, ValidationError):
        problems = [
            {
                "path": ".".join(str(p) for p in e["loc"]),
                "message": e["msg"],
                "fix": "check the GEO_INFER_OPS_* environment variables",
            }
            for e in exc.errors(include_url=False)
        ]
        message = f"invalid setting(s): {'; '.join(p['path'] + ': ' + p['message'] for p in problems)}"
        return simple_error("ConfigError", message, EXIT_USAGE, as_json, err, problems)
    if isinstance(exc, (GeoInferOpsError, ValueError, LookupError)):
        return simple_error(type(exc).__name__, str(exc), EXIT_USAGE, as_json, err)
    if isinstance(exc, OSError):
        return simple_error(type(exc).__name__, str(exc), EXIT_USAGE, as_json, err)
    message = f"unexpected {type(exc).__name__}: {exc} (set {DEBUG_ENV}=1 to see the traceback)"
    return simple_error(type(exc).__name__, message, EXIT_FAILED, as_json, err)


def simple_error(
    kind: str,
    message: str,
    code: int,
    as_json: bool,
    err: Console,
    problems: list[dict[str, str]] | None = None,
) -> int:
    if as_json:
        print_json({"error": kind, "message": message, "problems": problems or []})
    else:
        err.print(Text("error: ", style="bold red") + Text(message))
    return code

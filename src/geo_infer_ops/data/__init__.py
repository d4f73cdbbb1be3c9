"""Small real measurement data sets bundled with geo-infer-ops, as Parquet sensor tables.

Every table has one row per reading with the columns ``sensor_id`` (str), ``timestamp``
(datetime64[ns, UTC]), ``latitude`` and ``longitude`` (WGS84 degrees), then one column per
measured variable. Sources, licences and units are in ``README.md`` next to this file; the
files were made by ``scripts/prepare_data.py`` and nothing is downloaded at run time::

    from geo_infer_ops.data import list_sources, load_source

    list_sources()              # {'co2': Path(...), 'satellite': ..., 'sensors': ..., 'weather': ...}
    df = load_source("sensors")  # German rural PM10, daily 1998-2009
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import GeoInferOpsError

if TYPE_CHECKING:
    import pandas

__all__ = ["DATA_DIR", "UnknownSourceError", "list_sources", "load_source"]

DATA_DIR: Path = Path(__file__).resolve().parent


class UnknownSourceError(GeoInferOpsError, KeyError):
    """The name given to :func:`load_source` is not a bundled source."""

    def __str__(self) -> str:  # KeyError would wrap the message in quotes
        return str(self.args[0]) if self.args else ""


def list_sources() -> dict[str, Path]:
    """Map each bundled source name (file stem) to its Parquet file, sorted by name."""
    return {path.stem: path for path in sorted(DATA_DIR.glob("*.parquet"))}


def load_source(name: str) -> pandas.DataFrame:
    """Load one bundled source as a pandas DataFrame.

    Raises:
        UnknownSourceError: (a KeyError) ``name`` is not a bundled source; the message lists the
            available ones.
    """
    sources = list_sources()
    try:
        path = sources[name]
    except (KeyError, TypeError):
        available = ", ".join(sources) or "none"
        raise UnknownSourceError(
            f"unknown data source {name!r}; available sources: {available} (files in {DATA_DIR})"
        ) from None

    import pandas as pd

    return pd.read_parquet(path)

"""Actions of the quickstart workflow: a few real weather stations, their spacing, and a summary.

Import with ``--import examples/quickstart_actions.py`` (or GEO_INFER_OPS_IMPORTS).
"""

from __future__ import annotations

import json
import math

from geo_infer_ops import action

EARTH_RADIUS_KM = 6371.0088


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(a))


@action("EXAMPLE", "load_stations")
def load_stations(stations: list[dict]) -> list[dict]:
    """Check and normalise a list of stations ({id, name, lat, lon})."""
    cleaned = []
    for s in stations:
        lat, lon = float(s["lat"]), float(s["lon"])
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            raise ValueError(f"station {s['id']}: coordinates out of range ({lat}, {lon})")
        cleaned.append({"id": str(s["id"]), "name": s.get("name", s["id"]), "lat": lat, "lon": lon})
    return cleaned


@action("EXAMPLE", "nearest_neighbours")
def nearest_neighbours(ctx) -> list[dict]:
    """Great-circle distance from every station to its nearest neighbour."""
    stations = ctx.inputs["load_stations"]
    out = []
    for s in stations:
        best = min((o for o in stations if o is not s),
                   key=lambda o: haversine_km(s["lat"], s["lon"], o["lat"], o["lon"]))
        out.append({"id": s["id"], "nearest": best["id"],
                    "km": round(haversine_km(s["lat"], s["lon"], best["lat"], best["lon"]), 2)})
    ctx.log.info("computed nearest neighbours of %d stations", len(out))
    return out


@action("EXAMPLE", "bounding_box")
def bounding_box(ctx) -> dict:
    """The network's extent in degrees and kilometres."""
    stations = ctx.inputs["load_stations"]
    lats, lons = [s["lat"] for s in stations], [s["lon"] for s in stations]
    box = {"south": min(lats), "north": max(lats), "west": min(lons), "east": max(lons)}
    box["height_km"] = round(haversine_km(box["south"], box["west"], box["north"], box["west"]), 1)
    box["width_km"] = round(haversine_km(box["south"], box["west"], box["south"], box["east"]), 1)
    return box


@action("EXAMPLE", "summarise")
def summarise(ctx, title: str = "Station network") -> dict:
    """Write a JSON summary next to the run's artifacts and return it."""
    nn = ctx.inputs["nearest_neighbours"]
    box = ctx.inputs["bounding_box"]
    mean_km = sum(r["km"] for r in nn) / len(nn)
    ctx.metric("mean_nearest_neighbour_km", mean_km)
    summary = {
        "title": title,
        "stations": len(nn),
        "mean_nearest_neighbour_km": round(mean_km, 2),
        "most_isolated": max(nn, key=lambda r: r["km"]),
        "extent": box,
    }
    path = ctx.artifacts.path("summary.json")
    path.write_text(json.dumps(summary, indent=2))
    summary["written_to"] = str(path)
    return summary

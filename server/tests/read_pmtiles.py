"""Reads a PMTiles archive with the `pmtiles` package (PyPI): prints its header, metadata and
a SHA-256 of every tile's decompressed bytes, as JSON, for the export test to compare with
the server's own tiles.

    .venv/bin/python server/tests/read_pmtiles.py archive.pmtiles
"""

import gzip
import hashlib
import json
import sys

from pmtiles.reader import MmapSource, Reader, all_tiles

with open(sys.argv[1], "rb") as f:
    source = MmapSource(f)
    reader = Reader(source)
    header = reader.header()
    metadata = reader.metadata()
    tiles = {}
    for (z, x, y), data in all_tiles(source):
        raw = gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
        tiles[f"{z}/{x}/{y}"] = hashlib.sha256(raw).hexdigest()
    out = {
        "header": {k: (v.name if hasattr(v, "name") else v) for k, v in header.items()},
        "metadata": metadata,
        "tiles": tiles,
    }
    print(json.dumps(out, default=str))

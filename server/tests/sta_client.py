"""Reads and writes citytwin's SensorThings API with the `frost-sta-client` package (PyPI):
lists Things (a page at a time, following @iot.nextLink), reads a Datastream's Observations
with a filter, and creates an Observation. Prints what it saw as JSON.

    .venv/bin/python server/tests/sta_client.py http://host/v1.1 READER_KEY WRITER_KEY WL-0001
"""

import json
import sys

import frost_sta_client as fsc
from frost_sta_client.service.auth_handler import AuthHandler
from requests.auth import AuthBase

url, reader, writer, datastream = sys.argv[1:5]


class ApiKey(AuthHandler):
    """citytwin's API keys travel in X-Api-Key (the client's own handler sends Basic only)."""

    def __init__(self, key):
        super().__init__()
        self.key = key

    def add_auth_header(self):
        key = self.key

        class Header(AuthBase):
            def __call__(self, r):
                r.headers["X-Api-Key"] = key
                return r

        return Header()


read = fsc.SensorThingsService(url, auth_handler=ApiKey(reader))
write = fsc.SensorThingsService(url, auth_handler=ApiKey(writer))

# every Thing, two per page: the client follows @iot.nextLink
things = [t.name for t in read.things().query().top(2).list()]
ids = [t.id for t in read.things().query().top(2).list()]

ds = read.datastreams().find(datastream)
observations = [
    {"id": o.id, "result": o.result, "phenomenonTime": o.phenomenon_time}
    for o in ds.get_observations()
    .query()
    .filter("result gt 2")
    .orderby("phenomenonTime", "asc")
    .list()
]

created = fsc.Observation(
    result=7.5,
    phenomenon_time="2026-11-30T10:00:00.000Z",
    datastream=fsc.Datastream(id=datastream),
)
write.create(created)

back = read.observations().find(created.id)
print(
    json.dumps(
        {
            "things": things,
            "thing_ids": ids,
            "datastream": {"id": ds.id, "name": ds.name, "unit": ds.unit_of_measurement.name},
            "observations": observations,
            "created": created.id,
            "read_back": back.result,
        }
    )
)

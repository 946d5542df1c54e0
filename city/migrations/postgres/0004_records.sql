-- The data bureau's records: requests for conditionally shared or opened layers (grants)
-- and objections to data (Data art. 21-24, 35), one JSON body each.
CREATE TABLE citytwin_records (
    kind text NOT NULL,
    id text NOT NULL,
    at bigint NOT NULL,
    body jsonb NOT NULL,
    PRIMARY KEY (kind, id)
);

-- Orders: one row per accepted order. `seq` preserves time priority for restore.
CREATE TABLE IF NOT EXISTS orders (
    id          BIGINT PRIMARY KEY,
    seq         BIGSERIAL NOT NULL,
    client_id   TEXT,
    account     TEXT NOT NULL,
    symbol      TEXT NOT NULL,
    side        TEXT NOT NULL CHECK (side IN ('buy', 'sell')),
    order_type  TEXT NOT NULL CHECK (order_type IN ('limit', 'market')),
    price       BIGINT,
    qty         BIGINT NOT NULL CHECK (qty > 0),
    filled      BIGINT NOT NULL DEFAULT 0,
    status      TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS orders_open_idx ON orders (seq)
    WHERE status IN ('open', 'partially_filled');

-- Fills: one row per execution.
CREATE TABLE IF NOT EXISTS fills (
    id              BIGSERIAL PRIMARY KEY,
    symbol          TEXT NOT NULL,
    taker_order_id  BIGINT NOT NULL REFERENCES orders (id),
    maker_order_id  BIGINT NOT NULL REFERENCES orders (id),
    taker_side      TEXT NOT NULL,
    price           BIGINT NOT NULL,
    qty             BIGINT NOT NULL CHECK (qty > 0),
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS fills_taker_idx ON fills (taker_order_id);
CREATE INDEX IF NOT EXISTS fills_maker_idx ON fills (maker_order_id);

-- Order ids are handed out in blocks of 1000 so that several instances sharing a
-- database (blue/green) never collide.
CREATE SEQUENCE IF NOT EXISTS order_id_blocks START WITH 1 INCREMENT BY 1000;

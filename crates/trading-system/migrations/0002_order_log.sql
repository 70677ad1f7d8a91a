-- One ordered log of everything that changes a book, shared by every instance
-- (blue and green): an entry per accepted order ('new') and per cancel ('cancel').
-- Entries of one symbol are appended only under that symbol's advisory lock, inside
-- the transaction that also writes the orders and fills, so per symbol `seq` order
-- is commit order and a reader catching up from its last applied seq sees no gaps.
CREATE TABLE IF NOT EXISTS order_log (
    seq         BIGSERIAL PRIMARY KEY,
    symbol      TEXT NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('new', 'cancel')),
    order_id    BIGINT NOT NULL REFERENCES orders (id),
    -- The outcome the writer saw (lots filled by a new order, lots removed by a
    -- cancel): an instance replaying the entry checks it gets the same.
    lots        BIGINT NOT NULL,
    -- Which running instance wrote it (diagnostics).
    origin      TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS order_log_symbol_seq_idx ON order_log (symbol, seq);

-- The last log entry per symbol, updated in the same transaction: tells an instance
-- which symbols have entries it has not applied without scanning the log.
CREATE TABLE IF NOT EXISTS log_heads (
    symbol  TEXT PRIMARY KEY,
    seq     BIGINT NOT NULL
);

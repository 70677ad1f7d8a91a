-- A writer may match a batch speculatively, before it holds its symbols' locks, on the
-- books as it last saw them. Once it holds the locks it calls this, in the same
-- transaction and before writing: if another instance appended to the log of one of
-- the symbols since the writer last applied it, the batch was matched on a stale book,
-- and the transaction fails here (SQLSTATE TS001), so nothing of it is written. The
-- writer then undoes the batch, catches up and runs it again.
CREATE OR REPLACE FUNCTION order_log_unmoved(symbols text[], applied bigint[]) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    moved text;
BEGIN
    SELECT w.symbol INTO moved
    FROM unnest(symbols, applied) AS w(symbol, seq)
    LEFT JOIN log_heads h ON h.symbol = w.symbol
    WHERE COALESCE(h.seq, 0) <> w.seq
    LIMIT 1;
    IF moved IS NOT NULL THEN
        RAISE EXCEPTION 'the order log of % moved since it was last applied', moved
            USING ERRCODE = 'TS001';
    END IF;
    RETURN true;
END
$$;

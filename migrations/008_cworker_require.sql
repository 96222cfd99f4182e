-- cworker_require(ok, message): true, or SQLSTATE CW001 with message when ok is not true.
--
-- Why: the worker sends its result's conditional COMPLETE, the COMMIT and the release of
-- the run lock in one round trip (libpq pipeline mode), before it knows whether the run
-- was still PARSING for its task. When it no longer is, the COMPLETE touches nothing and
-- this error aborts the transaction, so the rows streamed into it are never committed
-- (the COMMIT after it in the pipeline is skipped; the worker then rolls back).
CREATE OR REPLACE FUNCTION cworker_require(ok boolean, message text) RETURNS boolean
    LANGUAGE plpgsql AS $$
BEGIN
    IF ok IS NOT TRUE THEN
        RAISE EXCEPTION USING ERRCODE = 'CW001', MESSAGE = message;
    END IF;
    RETURN true;
END
$$;

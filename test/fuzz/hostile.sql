-- Schema fuzz_hostile for scripts/sqlfuzz: functions and operators that shadow
-- pg_catalog's with the same names and argument types. The fuzzer puts the schema first
-- on search_path (before pg_catalog) for some calls; code of pg_consistency that
-- resolves a name through the caller's search_path instead of qualifying it then runs one
-- of these, which raises SQLSTATE HX666 (a finding). Run once, as a superuser.
\set ON_ERROR_STOP on
DROP SCHEMA IF EXISTS fuzz_hostile CASCADE;
CREATE SCHEMA fuzz_hostile;
GRANT USAGE ON SCHEMA fuzz_hostile TO PUBLIC;

DO $plant$
DECLARE
  p record;
  n int := 0;
BEGIN
  -- Functions: every overload of names our SQL and C++ could reach unqualified.
  FOR p IN
    SELECT pr.oid, pr.proname, pg_catalog.pg_get_function_identity_arguments(pr.oid) AS args,
           pg_catalog.format_type(pr.prorettype, NULL) AS ret, pr.proretset
      FROM pg_catalog.pg_proc pr
     WHERE pr.pronamespace = 'pg_catalog'::regnamespace AND pr.prokind = 'f'
       AND pr.proname IN ('now', 'clock_timestamp', 'statement_timestamp', 'lower', 'upper', 'length',
                          'char_length', 'octet_length', 'format', 'concat', 'concat_ws', 'left', 'right',
                          'substr', 'substring', 'position', 'strpos', 'replace', 'split_part',
                          'regexp_replace', 'regexp_match', 'btrim', 'trim', 'to_jsonb', 'jsonb_build_object',
                          'jsonb_build_array', 'jsonb_typeof', 'jsonb_array_length', 'jsonb_object_keys',
                          'jsonb_each', 'jsonb_each_text', 'jsonb_array_elements', 'jsonb_set',
                          'jsonb_strip_nulls', 'to_json', 'row_to_json', 'array_length', 'array_agg',
                          'cardinality', 'unnest', 'array_position', 'nextval', 'currval', 'setval',
                          'current_setting', 'set_config', 'pg_advisory_xact_lock',
                          'pg_try_advisory_xact_lock', 'txid_current', 'pg_current_xact_id',
                          'hashtext', 'gen_random_uuid', 'md5', 'encode', 'decode', 'convert_to',
                          'convert_from', 'abs', 'greatest', 'least', 'coalesce', 'extract',
                          'date_part', 'date_trunc', 'to_char', 'make_interval', 'pg_sleep',
                          'quote_ident', 'quote_literal', 'quote_nullif', 'has_function_privilege',
                          'has_table_privilege', 'pg_has_role', 'to_regprocedure', 'to_regclass',
                          'to_regrole', 'pg_get_userbyid', 'session_user', 'current_user',
                          'pg_notify', 'count', 'max', 'min', 'sum', 'string_agg', 'bool_and',
                          'row_number', 'pg_backend_pid', 'pg_is_in_recovery', 'uuid_in', 'textin',
                          'int8in', 'jsonb_in', 'int4', 'int8', 'text', 'float8', 'numeric')
       AND NOT pr.proretset
       AND NOT EXISTS (SELECT FROM pg_catalog.unnest(pr.proargtypes::oid[] || pr.prorettype) t(oid)
                         JOIN pg_catalog.pg_type ty ON ty.oid = t.oid
                        WHERE ty.typtype = 'p' OR ty.typname IN ('internal', 'cstring', 'trigger'))
  LOOP
    BEGIN
      EXECUTE pg_catalog.format(
        'CREATE FUNCTION fuzz_hostile.%I(%s) RETURNS %s LANGUAGE plpgsql AS %L',
        p.proname, p.args, p.ret,
        pg_catalog.format('BEGIN RAISE EXCEPTION USING ERRCODE = %L, MESSAGE = %L; END',
                          'HX666', 'hostile function fuzz_hostile.' || p.proname || '(' || p.args || ') ran'));
      n := n + 1;
    EXCEPTION WHEN duplicate_function OR syntax_error OR invalid_function_definition THEN
      NULL;
    END;
  END LOOP;

  -- Operators: the common comparison, text and jsonb operators, same operand types.
  FOR p IN
    SELECT o.oprname, pg_catalog.format_type(o.oprleft, NULL) AS l, pg_catalog.format_type(o.oprright, NULL) AS r,
           pg_catalog.format_type(o.oprresult, NULL) AS ret, row_number() OVER () AS i
      FROM pg_catalog.pg_operator o
     WHERE o.oprnamespace = 'pg_catalog'::regnamespace AND o.oprkind = 'b'
       AND o.oprname IN ('=', '<>', '<', '>', '<=', '>=', '||', '->', '->>', '?', '@>', '<@', '+', '-', '~', '#>>')
       AND NOT EXISTS (SELECT FROM pg_catalog.pg_type ty WHERE ty.oid IN (o.oprleft, o.oprright, o.oprresult)
                          AND (ty.typtype = 'p' OR ty.typname IN ('internal', 'cstring')))
  LOOP
    BEGIN
      EXECUTE pg_catalog.format(
        'CREATE FUNCTION fuzz_hostile.op_%s(%s, %s) RETURNS %s LANGUAGE plpgsql AS %L',
        p.i, p.l, p.r, p.ret,
        pg_catalog.format('BEGIN RAISE EXCEPTION USING ERRCODE = %L, MESSAGE = %L; END',
                          'HX666', 'hostile operator fuzz_hostile.' || p.oprname || '(' || p.l || ', ' || p.r || ') ran'));
      EXECUTE pg_catalog.format('CREATE OPERATOR fuzz_hostile.%s (LEFTARG = %s, RIGHTARG = %s, FUNCTION = fuzz_hostile.op_%s)',
                                p.oprname, p.l, p.r, p.i);
      n := n + 1;
    EXCEPTION WHEN duplicate_function OR duplicate_object OR syntax_error OR invalid_function_definition THEN
      NULL;
    END;
  END LOOP;
  RAISE NOTICE 'fuzz_hostile: % shadows', n;
END
$plant$;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA fuzz_hostile TO PUBLIC;

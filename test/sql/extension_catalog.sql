-- The catalog of the pg_consistency extension as sorted lines, one per property of each of its
-- objects: a fresh install and an updated one must print the same lines (test/t/700_upgrade.t).
-- Columns are compared by name: ALTER TABLE ADD COLUMN puts a new column last.
WITH ext AS (SELECT oid FROM pg_catalog.pg_extension WHERE extname = 'pg_consistency'),
members AS (
  SELECT d.classid, d.objid FROM pg_catalog.pg_depend d, ext
   WHERE d.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass AND d.refobjid = ext.oid
     AND d.deptype = 'e'),
rels AS (
  SELECT c.oid, c.relname, c.relkind FROM pg_catalog.pg_class c
   WHERE c.relnamespace = 'consistency'::pg_catalog.regnamespace),
procs AS (
  SELECT p.oid, p.oid::pg_catalog.regprocedure::text AS sig FROM pg_catalog.pg_proc p
   WHERE p.pronamespace = 'consistency'::pg_catalog.regnamespace),
lines(l) AS (
  -- what belongs to the extension
  SELECT 'member ' || pg_catalog.pg_describe_object(m.classid, m.objid, 0) FROM members m
  UNION ALL
  -- objects in the schema that do not belong to it (a CREATE the script forgot to make a member of)
  SELECT 'not a member: ' || pg_catalog.pg_describe_object('pg_catalog.pg_class'::pg_catalog.regclass, r.oid, 0)
    FROM rels r WHERE r.relkind IN ('r', 'v', 'S', 'm', 'f', 'p')
     AND NOT EXISTS (SELECT 1 FROM members m WHERE m.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND m.objid = r.oid)
  UNION ALL
  SELECT 'not a member: ' || p.sig FROM procs p
   WHERE NOT EXISTS (SELECT 1 FROM members m WHERE m.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass AND m.objid = p.oid)
  UNION ALL
  -- functions: the whole definition, line by line, and who may execute them
  SELECT 'function ' || p.sig || ' | ' || pg_catalog.lpad(t.n::text, 3, '0') || ' ' || t.line
    FROM procs p, pg_catalog.regexp_split_to_table(pg_catalog.pg_get_functiondef(p.oid), E'\n') WITH ORDINALITY t(line, n)
   WHERE (SELECT prokind FROM pg_catalog.pg_proc WHERE oid = p.oid) <> 'a'
  UNION ALL
  SELECT 'function ' || p.sig || ' | acl ' || coalesce((SELECT pg_catalog.string_agg(a::text, ' ' ORDER BY a::text)
                                                        FROM pg_catalog.unnest(pp.proacl) a), 'default')
    FROM procs p JOIN pg_catalog.pg_proc pp ON pp.oid = p.oid
  UNION ALL
  SELECT 'function ' || p.sig || ' | owner ' || pp.proowner::pg_catalog.regrole::text
    FROM procs p JOIN pg_catalog.pg_proc pp ON pp.oid = p.oid
  UNION ALL
  -- relations: kind, options, owner, acl, row security
  SELECT 'relation ' || r.relname || ' | kind ' || c.relkind::text || ' persistence ' || c.relpersistence::text
         || ' options ' || coalesce(c.reloptions::text, '{}') || ' rls ' || c.relrowsecurity || '/' || c.relforcerowsecurity
         || ' replident ' || c.relreplident::text || ' owner ' || c.relowner::pg_catalog.regrole::text
    FROM rels r JOIN pg_catalog.pg_class c ON c.oid = r.oid WHERE r.relkind <> 'c'
  UNION ALL
  SELECT 'relation ' || r.relname || ' | acl ' || coalesce((SELECT pg_catalog.string_agg(a::text, ' ' ORDER BY a::text)
                                                            FROM pg_catalog.unnest(c.relacl) a), 'default')
    FROM rels r JOIN pg_catalog.pg_class c ON c.oid = r.oid WHERE r.relkind IN ('r', 'v', 'S', 'm', 'f', 'p')
  UNION ALL
  -- columns, by name (ALTER TABLE ADD COLUMN puts a new column last; the position is not compared)
  SELECT 'column ' || r.relname || '.' || a.attname || ' | ' || pg_catalog.format_type(a.atttypid, a.atttypmod)
         || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
         || CASE WHEN a.attgenerated <> '' THEN ' generated ' || pg_catalog.pg_get_expr(ad.adbin, ad.adrelid)
                 WHEN ad.adbin IS NOT NULL THEN ' default ' || pg_catalog.pg_get_expr(ad.adbin, ad.adrelid) ELSE '' END
         || CASE WHEN a.attidentity <> '' THEN ' identity ' || a.attidentity::text ELSE '' END
         || ' storage ' || a.attstorage::text || ' compression ' || CASE WHEN a.attcompression = '' THEN '-' ELSE a.attcompression::text END
         || CASE WHEN a.attcollation <> 0 AND a.attcollation <> t.typcollation THEN ' collate ' || a.attcollation::pg_catalog.regcollation::text ELSE '' END
         || CASE WHEN a.attstattarget <> -1 THEN ' statistics ' || a.attstattarget ELSE '' END
         || CASE WHEN a.attacl IS NOT NULL THEN ' acl ' || (SELECT pg_catalog.string_agg(x::text, ' ' ORDER BY x::text) FROM pg_catalog.unnest(a.attacl) x) ELSE '' END
    FROM rels r JOIN pg_catalog.pg_attribute a ON a.attrelid = r.oid
    JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
    LEFT JOIN pg_catalog.pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
   WHERE a.attnum > 0 AND NOT a.attisdropped AND r.relkind IN ('r', 'v', 'm', 'f', 'p', 'c')
  UNION ALL
  SELECT 'constraint ' || r.relname || '.' || co.conname || ' | ' || pg_catalog.pg_get_constraintdef(co.oid)
         || CASE WHEN co.condeferrable THEN ' deferrable' ELSE '' END
    FROM rels r JOIN pg_catalog.pg_constraint co ON co.conrelid = r.oid
  UNION ALL
  SELECT 'index ' || r.relname || ' | ' || pg_catalog.pg_get_indexdef(i.indexrelid)
         || CASE WHEN i.indisclustered THEN ' clustered' ELSE '' END
         || CASE WHEN i.indisreplident THEN ' replica identity' ELSE '' END
    FROM rels r JOIN pg_catalog.pg_index i ON i.indexrelid = r.oid
  UNION ALL
  SELECT 'trigger ' || r.relname || '.' || tg.tgname || ' | ' || pg_catalog.pg_get_triggerdef(tg.oid) || ' enabled ' || tg.tgenabled::text
    FROM rels r JOIN pg_catalog.pg_trigger tg ON tg.tgrelid = r.oid WHERE NOT tg.tgisinternal
  UNION ALL
  SELECT 'view ' || r.relname || ' | ' || pg_catalog.lpad(t.n::text, 3, '0') || ' ' || t.line
    FROM rels r, pg_catalog.regexp_split_to_table(pg_catalog.pg_get_viewdef(r.oid), E'\n') WITH ORDINALITY t(line, n)
   WHERE r.relkind IN ('v', 'm')
  UNION ALL
  SELECT 'sequence ' || r.relname || ' | ' || pg_catalog.format_type(s.seqtypid, NULL) || ' start ' || s.seqstart
         || ' increment ' || s.seqincrement || ' min ' || s.seqmin || ' max ' || s.seqmax || ' cache ' || s.seqcache
         || ' cycle ' || s.seqcycle
         || coalesce(' owned by ' || (SELECT pg_catalog.pg_describe_object(d.refclassid, d.refobjid, d.refobjsubid)
                                        FROM pg_catalog.pg_depend d
                                       WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.objid = r.oid
                                         AND d.deptype IN ('a', 'i') AND d.refobjsubid > 0), '')
    FROM rels r JOIN pg_catalog.pg_sequence s ON s.seqrelid = r.oid
  UNION ALL
  SELECT 'policy ' || r.relname || '.' || po.polname || ' | ' || po.polcmd::text || ' ' || po.polpermissive
         || ' roles ' || po.polroles::text || ' using ' || coalesce(pg_catalog.pg_get_expr(po.polqual, po.polrelid), '-')
         || ' check ' || coalesce(pg_catalog.pg_get_expr(po.polwithcheck, po.polrelid), '-')
    FROM rels r JOIN pg_catalog.pg_policy po ON po.polrelid = r.oid
  UNION ALL
  SELECT 'type ' || ty.oid::pg_catalog.regtype::text || ' | ' || ty.typtype::text
         || coalesce(' ' || pg_catalog.format_type(ty.typbasetype, ty.typtypmod), '')
         || ' enum ' || coalesce((SELECT pg_catalog.string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder)
                                    FROM pg_catalog.pg_enum e WHERE e.enumtypid = ty.oid), '-')
    FROM pg_catalog.pg_type ty
   WHERE ty.typnamespace = 'consistency'::pg_catalog.regnamespace AND ty.typtype IN ('d', 'e', 'r', 'm')
      OR (ty.typnamespace = 'consistency'::pg_catalog.regnamespace AND ty.typtype = 'c'
          AND (SELECT relkind FROM pg_catalog.pg_class WHERE oid = ty.typrelid) = 'c')
  UNION ALL
  -- comments on anything in the extension or the schema
  SELECT 'comment ' || pg_catalog.pg_describe_object(de.classoid, de.objoid, de.objsubid) || ' | ' || de.description
    FROM pg_catalog.pg_description de
   WHERE (de.classoid, de.objoid) IN (SELECT classid, objid FROM members)
      OR (de.classoid = 'pg_catalog.pg_class'::pg_catalog.regclass AND de.objoid IN (SELECT oid FROM rels))
      OR (de.classoid = 'pg_catalog.pg_namespace'::pg_catalog.regclass AND de.objoid = 'consistency'::pg_catalog.regnamespace)
  UNION ALL
  -- the schema itself
  SELECT 'schema consistency | owner ' || n.nspowner::pg_catalog.regrole::text || ' acl '
         || coalesce((SELECT pg_catalog.string_agg(a::text, ' ' ORDER BY a::text) FROM pg_catalog.unnest(n.nspacl) a), 'default')
    FROM pg_catalog.pg_namespace n WHERE n.nspname = 'consistency'
  UNION ALL
  -- what pg_dump keeps the rows of (pg_extension_config_dump)
  SELECT 'dumped ' || c.relname || ' | ' || coalesce(NULLIF(x.cond, ''), 'all rows')
    FROM pg_catalog.pg_extension e,
         ROWS FROM (pg_catalog.unnest(e.extconfig), pg_catalog.unnest(e.extcondition)) x(rel, cond)
    JOIN pg_catalog.pg_class c ON c.oid = x.rel
   WHERE e.extname = 'pg_consistency'
  UNION ALL
  SELECT 'extension | version ' || e.extversion || ' schema ' || e.extnamespace::pg_catalog.regnamespace::text
         || ' relocatable ' || e.extrelocatable
    FROM pg_catalog.pg_extension e WHERE e.extname = 'pg_consistency'
)
SELECT l FROM lines ORDER BY l COLLATE "C";

SELECT global_position, stream, version, event_id, type, schema_version, data, metadata, created_at
  FROM consistency.events WHERE stream = 'read-1' AND version >= 1 ORDER BY version LIMIT 1000;

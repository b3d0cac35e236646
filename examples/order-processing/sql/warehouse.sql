-- A warehouse database (`east`, `west`): plain PostgreSQL, a two-phase-commit participant of
-- the inventory service. No extension needed.
CREATE TABLE bins (
  sku     text PRIMARY KEY,
  initial int NOT NULL,
  qty     int NOT NULL CHECK (qty >= 0)
);

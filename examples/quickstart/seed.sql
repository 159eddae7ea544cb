-- The quick start's demo "production" database: a few thousand rows.
PRAGMA journal_mode=WAL;
CREATE TABLE users (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  email TEXT NOT NULL UNIQUE,
  status TEXT NOT NULL DEFAULT 'active',
  balance_cents INTEGER NOT NULL DEFAULT 0,
  created_at TEXT NOT NULL
);
CREATE INDEX idx_users_status ON users(status);
CREATE INDEX idx_users_created ON users(created_at);
CREATE TABLE user_changes (
  id INTEGER PRIMARY KEY,
  user_id INTEGER NOT NULL,
  old_status TEXT,
  new_status TEXT,
  changed_at TEXT NOT NULL DEFAULT (datetime('now'))
);
CREATE TRIGGER users_status_log AFTER UPDATE OF status ON users
BEGIN
  INSERT INTO user_changes(user_id, old_status, new_status) VALUES (old.id, old.status, new.status);
END;
CREATE TABLE payments (
  id INTEGER PRIMARY KEY,
  user_id INTEGER NOT NULL REFERENCES users(id),
  amount_cents INTEGER NOT NULL,
  state TEXT NOT NULL
);
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1204)
INSERT INTO users(id, name, email, status, balance_cents, created_at)
SELECT i,
       'customer ' || i,
       'customer' || i || '@example.com',
       CASE WHEN i % 17 = 0 THEN 'inactive' ELSE 'active' END,
       (i * 7919) % 100000,
       date('2024-01-01', '+' || (i % 700) || ' days')
FROM n;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000)
INSERT INTO payments(id, user_id, amount_cents, state)
SELECT i, 1 + (i * 31) % 1204, 100 + (i * 104729) % 50000,
       CASE WHEN i % 9 = 0 THEN 'refunded' ELSE 'settled' END
FROM n;

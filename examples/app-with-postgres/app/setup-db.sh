#!/bin/sh
# The role, database and table the app needs; safe to run on every start.
set -eu
psql() { /usr/lib/postgresql/15/bin/psql -h /run/postgresql -v ON_ERROR_STOP=1 -q "$@"; }
psql -d postgres <<'SQL'
SELECT 'CREATE ROLE app LOGIN' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'app')\gexec
SELECT 'CREATE DATABASE app OWNER app' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'app')\gexec
SQL
psql -d app <<'SQL'
CREATE TABLE IF NOT EXISTS visits (id bigserial PRIMARY KEY, at timestamptz NOT NULL DEFAULT now());
ALTER TABLE visits OWNER TO app;
SQL
echo "database ready"

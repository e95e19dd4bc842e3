#!/bin/sh
# Creates one database per context (POS_DATABASES, space-separated) owned
# by POSTGRES_USER. The postgres image runs it once, on an empty data
# directory; it is idempotent, so after adding a context to an existing
# deployment run it again:
#   docker compose exec postgres sh /docker-entrypoint-initdb.d/10-databases.sh
set -eu
databases=${POS_DATABASES:?POS_DATABASES lists the databases to create}
# Names go into SQL: accept only what a context name can be, and check
# them all before creating any.
for db in $databases; do
	case "$db" in
	*[!a-z0-9_]*)
		echo "init-databases: refusing database name '$db'" >&2
		exit 1
		;;
	esac
done
for db in $databases; do
	exists=$(psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$db'")
	if [ "$exists" != "1" ]; then
		psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres -c "CREATE DATABASE \"$db\""
	fi
done

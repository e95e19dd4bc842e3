package db

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"gorm.io/gorm"
)

// Migrations are plain SQL files named NNNN_description.sql, embedded by
// their context and applied in order, each version once. They are written
// once in the subset both engines share; for PostgreSQL the column types
// TIMESTAMP and BLOB are rewritten to TIMESTAMPTZ and BYTEA (SQLite's driver
// recognises times only by the declared type TIMESTAMP, PostgreSQL should
// keep the zone). A file NNNN_x.postgres.sql or NNNN_x.sqlite.sql replaces
// the portable one on that engine where the subset is not enough.

var migrationName = regexp.MustCompile(`^(\d{4})_([a-z0-9_]+?)(?:\.(postgres|sqlite))?\.sql$`)

type migration struct {
	version int
	name    string
	sql     string
}

// Migrate applies the migrations in fsys (a context's embedded folder) that
// the database has not seen yet, then the platform's own tables that every
// context database carries: the outbox (events it publishes, written in
// the same transaction as its state) and the inbox (events it consumed,
// for idempotency). It is safe to call from several processes at once:
// PostgreSQL serialises them with an advisory lock, SQLite with its write
// lock.
func Migrate(ctx context.Context, gdb *gorm.DB, fsys fs.FS) error {
	if err := MigrateSet(ctx, gdb, "main", fsys); err != nil {
		return err
	}
	if err := MigrateSet(ctx, gdb, OutboxSet, OutboxMigrations); err != nil {
		return err
	}
	return MigrateSet(ctx, gdb, InboxSet, InboxMigrations)
}

// The platform's tables in every context database.
const (
	OutboxSet = "outbox"
	InboxSet  = "inbox"
)

//go:embed platform/outbox/*.sql platform/inbox/*.sql
var platformMigrations embed.FS

// OutboxMigrations and InboxMigrations are the platform sets Migrate
// applies; packages outbox and inbox re-export them.
var (
	OutboxMigrations = mustSub(platformMigrations, "platform/outbox")
	InboxMigrations  = mustSub(platformMigrations, "platform/inbox")
)

func mustSub(fsys fs.FS, dir string) fs.FS {
	sub, err := fs.Sub(fsys, dir)
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	return sub
}

// MigrateSet applies one named set of migrations. Platform components that
// keep tables inside a context's database (the outbox, processed events)
// ship their own set, numbered independently of the context's.
func MigrateSet(ctx context.Context, gdb *gorm.DB, set string, fsys fs.FS) error {
	dialect := DialectOf(gdb)
	migs, err := load(fsys, dialect)
	if err != nil {
		return err
	}
	return gdb.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if dialect == Postgres {
			// One lock per schema: two cart instances starting together
			// must not both apply 0001.
			if err := tx.Exec(`SELECT pg_advisory_xact_lock(hashtext(current_schema()))`).Error; err != nil {
				return fmt.Errorf("migration lock: %w", err)
			}
		}
		if err := tx.Exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
			set_name TEXT NOT NULL,
			version INTEGER NOT NULL,
			name TEXT NOT NULL,
			applied_at ` + typeTimestamp(dialect) + ` NOT NULL DEFAULT CURRENT_TIMESTAMP,
			PRIMARY KEY (set_name, version))`).Error; err != nil {
			return fmt.Errorf("create schema_migrations: %w", err)
		}
		var applied []int
		if err := tx.Raw(`SELECT version FROM schema_migrations WHERE set_name = ?`, set).Scan(&applied).Error; err != nil {
			return fmt.Errorf("read schema_migrations: %w", err)
		}
		done := map[int]bool{}
		for _, v := range applied {
			done[v] = true
		}
		for _, m := range migs {
			if done[m.version] {
				continue
			}
			for _, stmt := range splitStatements(m.sql) {
				if err := tx.Exec(stmt).Error; err != nil {
					return fmt.Errorf("migration %s/%04d_%s: %w", set, m.version, m.name, err)
				}
			}
			if err := tx.Exec(`INSERT INTO schema_migrations (set_name, version, name) VALUES (?, ?, ?)`, set, m.version, m.name).Error; err != nil {
				return fmt.Errorf("record migration %04d: %w", m.version, err)
			}
		}
		return nil
	})
}

func load(fsys fs.FS, dialect Dialect) ([]migration, error) {
	// Contexts embed "migrations/*.sql"; accept that folder or its contents.
	if st, err := fs.Stat(fsys, "migrations"); err == nil && st.IsDir() {
		sub, err := fs.Sub(fsys, "migrations")
		if err != nil {
			return nil, err
		}
		fsys = sub
	}
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	byVersion := map[int]migration{}
	specific := map[int]bool{}
	for _, e := range entries {
		m := migrationName.FindStringSubmatch(e.Name())
		if m == nil {
			if strings.HasSuffix(e.Name(), ".sql") {
				return nil, fmt.Errorf("migration %q: name must be NNNN_description[.postgres|.sqlite].sql", e.Name())
			}
			continue
		}
		v, _ := strconv.Atoi(m[1])
		if m[3] != "" && Dialect(m[3]) != dialect {
			continue
		}
		if m[3] == "" && specific[v] {
			continue
		}
		body, err := fs.ReadFile(fsys, e.Name())
		if err != nil {
			return nil, err
		}
		if prev, dup := byVersion[v]; dup && m[3] == "" {
			return nil, fmt.Errorf("migration version %04d used twice (%s, %s)", v, prev.name, m[2])
		}
		sql := string(body)
		if m[3] == "" && dialect == Postgres {
			sql = toPostgres(sql)
		}
		if m[3] != "" {
			specific[v] = true
		}
		byVersion[v] = migration{version: v, name: m[2], sql: sql}
	}
	out := make([]migration, 0, len(byVersion))
	for _, m := range byVersion {
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].version < out[j].version })
	return out, nil
}

var (
	timestampType = regexp.MustCompile(`\bTIMESTAMP\b`)
	blobType      = regexp.MustCompile(`\bBLOB\b`)
)

func toPostgres(sql string) string {
	sql = timestampType.ReplaceAllString(sql, "TIMESTAMPTZ")
	return blobType.ReplaceAllString(sql, "BYTEA")
}

func typeTimestamp(d Dialect) string {
	if d == Postgres {
		return "TIMESTAMPTZ"
	}
	return "TIMESTAMP"
}

// splitStatements cuts a migration at semicolons that end a line. Our
// migrations hold no procedural bodies, so that is enough, and it lets both
// drivers run one statement per Exec.
func splitStatements(sql string) []string {
	var out []string
	var cur strings.Builder
	for _, line := range strings.Split(sql, "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "--") {
			continue
		}
		cur.WriteString(line)
		cur.WriteString("\n")
		if strings.HasSuffix(trimmed, ";") {
			if s := strings.TrimSpace(cur.String()); s != ";" {
				out = append(out, s)
			}
			cur.Reset()
		}
	}
	if s := strings.TrimSpace(cur.String()); s != "" {
		out = append(out, s)
	}
	return out
}

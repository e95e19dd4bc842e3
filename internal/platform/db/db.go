// Package db opens a context's own database and applies its migrations.
//
// Every context gets a database of its own (rule 3 of DESIGN.md): in the
// embedded default a SQLite file <data-dir>/<context>.db, in production a
// PostgreSQL database. When several contexts share one PostgreSQL database
// (POS_DATABASE_URL), each lives in a schema named after it, so their tables
// never collide and none can read another's by accident.
package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/libtnb/sqlite"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// Dialect names the SQL engine behind a *gorm.DB.
type Dialect string

// The two engines the project runs on.
const (
	SQLite   Dialect = "sqlite"
	Postgres Dialect = "postgres"
)

// sqlitePragmas: WAL lets readers run beside the writer; busy_timeout waits
// for the write lock instead of failing; _txlock=immediate takes the write
// lock at BEGIN, without which read-then-write transactions fail with
// SQLITE_BUSY when two of them race to upgrade their read locks.
const sqlitePragmas = "_pragma=journal_mode(WAL)&_pragma=busy_timeout(5000)&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)&_txlock=immediate"

// Options says which database to open.
type Options struct {
	// Context names the owner: the SQLite file name and the PostgreSQL schema.
	Context string
	// URL is postgres://…, sqlite:PATH, or empty for <DataDir>/<Context>.db.
	URL string
	// DataDir is where embedded SQLite files live.
	DataDir string
	// MaxOpenConns bounds the pool; 0 picks a default per dialect.
	MaxOpenConns int
	// SchemaPrefix, on PostgreSQL without a search_path in the URL, names
	// the schema <prefix>_<context>: several deployments (or test runs)
	// can then share one database without sharing tables.
	SchemaPrefix string
}

// Open connects to the context's database, creating the SQLite file or the
// PostgreSQL schema when missing.
func Open(ctx context.Context, o Options) (*gorm.DB, error) {
	cfg := &gorm.Config{
		Logger:                 logger.Discard,
		SkipDefaultTransaction: true, // our writes choose their own transactions
		NowFunc:                func() time.Time { return time.Now().UTC().Truncate(time.Microsecond) },
		TranslateError:         false,
	}
	var (
		gdb *gorm.DB
		err error
	)
	switch {
	case strings.HasPrefix(o.URL, "postgres://"), strings.HasPrefix(o.URL, "postgresql://"):
		schemaName := o.Context
		if o.SchemaPrefix != "" {
			schemaName = o.SchemaPrefix + "_" + o.Context
		}
		dsn, schema, perr := postgresDSN(o.URL, schemaName)
		if perr != nil {
			return nil, perr
		}
		if err := ensureSchema(ctx, o.URL, schema); err != nil {
			return nil, err
		}
		gdb, err = gorm.Open(postgresDialector{postgres.Open(dsn).(*postgres.Dialector)}, cfg)
		if err == nil {
			sqlDB, _ := gdb.DB()
			sqlDB.SetMaxOpenConns(orInt(o.MaxOpenConns, 6))
			sqlDB.SetMaxIdleConns(orInt(o.MaxOpenConns, 6))
			sqlDB.SetConnMaxIdleTime(5 * time.Minute)
		}
	default:
		path := strings.TrimPrefix(strings.TrimPrefix(o.URL, "sqlite://"), "sqlite:")
		if path == "" {
			if err := os.MkdirAll(o.DataDir, 0o750); err != nil {
				return nil, fmt.Errorf("data dir: %w", err)
			}
			path = filepath.Join(o.DataDir, o.Context+".db")
		}
		// SQLite compiles every statement it is given: under load its
		// parser was ~12% of the CPU (README, "Performance"). gorm's
		// statement cache compiles each distinct statement once per
		// connection. PostgreSQL needs no such cache: pgx keeps one per
		// connection already. The bound keeps statements built with a
		// variable number of placeholders (IN lists) from piling up.
		cfg.PrepareStmt, cfg.PrepareStmtMaxSize, cfg.PrepareStmtTTL = true, 512, 10*time.Minute
		// The pool is opened here, to give gorm the one whose transactions
		// take turns (sqlitePool); the parameters are those the dialector
		// adds when it opens the pool itself.
		sqlDB, oerr := sql.Open(sqlite.DriverName, "file:"+path+"?"+sqlitePragmas+"&_texttotime=1&_inttotime=1&_time_format=sqlite")
		if oerr != nil {
			return nil, fmt.Errorf("open %s database: %w", o.Context, oerr)
		}
		sqlDB.SetMaxOpenConns(orInt(o.MaxOpenConns, 8))
		sqlDB.SetMaxIdleConns(orInt(o.MaxOpenConns, 8))
		// Processes opening a new file at the same moment (a seed beside a
		// serve, concurrent migrators): switching it to WAL takes a lock
		// SQLite does not wait for, busy_timeout or not, so the loser's
		// first connection fails with SQLITE_BUSY. The lock is gone a
		// moment later; the first connection is made here, retried, rather
		// than in gorm.Open, which closes the pool when it fails.
		for attempt := 1; ; attempt++ {
			err = sqlDB.PingContext(ctx)
			if err == nil || !IsSerializationFailure(err) || attempt == 50 {
				break
			}
			time.Sleep(time.Duration(5+rand.IntN(20)) * time.Millisecond)
		}
		if err == nil {
			gdb, err = gorm.Open(sqliteDialector{sqlite.New(sqlite.Config{Conn: newSQLitePool(sqlDB)}).(*sqlite.Dialector)}, cfg)
		}
		if err != nil {
			_ = sqlDB.Close()
		}
	}
	if err != nil {
		return nil, fmt.Errorf("open %s database: %w", o.Context, err)
	}
	sqlDB, _ := gdb.DB()
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := sqlDB.PingContext(pctx); err != nil {
		_ = sqlDB.Close()
		return nil, fmt.Errorf("ping %s database: %w", o.Context, err)
	}
	return gdb, nil
}

// The dialectors, but for Explain. gorm's Scan (Raw(…).Scan(&v), the
// usual way to read a query into a struct) swaps in a recorder that
// renders every statement with its values — Explain, regular expressions
// over the SQL — whether or not anything will log it. Our logger discards
// SQL (logger.Discard), so the rendering was pure cost: 2–3% of the
// server's CPU under the checkout load (README, "Performance"). Explain
// answers the SQL as written; everything else is the driver's.
type (
	postgresDialector struct{ *postgres.Dialector }
	sqliteDialector   struct{ *sqlite.Dialector }
)

// Explain answers sql without rendering vars into it.
func (postgresDialector) Explain(sql string, _ ...any) string { return sql }

// Explain answers sql without rendering vars into it.
func (sqliteDialector) Explain(sql string, _ ...any) string { return sql }

// Close releases the pool behind gdb.
func Close(gdb *gorm.DB) error {
	sqlDB, err := gdb.DB()
	if err != nil {
		return err
	}
	return sqlDB.Close()
}

// Ping checks the database answers; it backs every context's readiness.
func Ping(ctx context.Context, gdb *gorm.DB) error {
	sqlDB, err := gdb.DB()
	if err != nil {
		return err
	}
	return sqlDB.PingContext(ctx)
}

// DialectOf tells which engine gdb talks to.
func DialectOf(gdb *gorm.DB) Dialect {
	if gdb.Dialector.Name() == "postgres" {
		return Postgres
	}
	return SQLite
}

// postgresDSN adds search_path=<schema> unless the URL already names one
// (tests do, to give each test a schema of its own).
func postgresDSN(raw, contextName string) (dsn, schema string, err error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", "", fmt.Errorf("database url: %w", err)
	}
	q := u.Query()
	schema = q.Get("search_path")
	if schema == "" {
		schema = contextName
		q.Set("search_path", schema)
	}
	if !validIdent.MatchString(schema) {
		return "", "", fmt.Errorf("database url: schema %q is not a plain identifier", schema)
	}
	u.RawQuery = q.Encode()
	return u.String(), schema, nil
}

var validIdent = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// ensureSchema creates the schema on a short-lived connection: search_path
// must name an existing schema before the pool's first query.
func ensureSchema(ctx context.Context, raw, schema string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	q := u.Query()
	q.Del("search_path")
	u.RawQuery = q.Encode()
	conn, err := pgconn.Connect(ctx, u.String())
	if err != nil {
		return fmt.Errorf("connect postgres: %w", err)
	}
	defer conn.Close(context.Background())
	// Concurrent CREATE SCHEMA IF NOT EXISTS can still race on the catalog's
	// unique index; a duplicate means someone else made it, which is fine.
	err = conn.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS "`+schema+`"`).Close()
	if err != nil && !IsUniqueViolation(err) {
		return fmt.Errorf("create schema %s: %w", schema, err)
	}
	return nil
}

// IsUniqueViolation reports a primary-key or unique-index clash on either
// engine, so stores can turn it into errs.Conflict or an idempotent replay.
func IsUniqueViolation(err error) bool {
	if err == nil {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code == "23505"
	}
	if errors.Is(err, gorm.ErrDuplicatedKey) {
		return true
	}
	msg := err.Error()
	return strings.Contains(msg, "UNIQUE constraint failed") || strings.Contains(msg, "constraint failed: PRIMARY KEY")
}

// IsCheckViolation reports a CHECK constraint failure (the last line of
// defence of invariants such as "stock never negative").
func IsCheckViolation(err error) bool {
	if err == nil {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code == "23514"
	}
	return strings.Contains(err.Error(), "CHECK constraint failed")
}

// IsSerializationFailure reports an error that is safe to retry the whole
// transaction for: PostgreSQL serialization failures and deadlocks, SQLite
// busy errors that outlived busy_timeout.
func IsSerializationFailure(err error) bool {
	if err == nil {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code == "40001" || pgErr.Code == "40P01"
	}
	msg := err.Error()
	return strings.Contains(msg, "SQLITE_BUSY") || strings.Contains(msg, "database is locked")
}

func orInt(v, def int) int {
	if v > 0 {
		return v
	}
	return def
}

// Rebind writes the "?" placeholders of q in the engine's syntax: "$1",
// "$2", … on PostgreSQL, unchanged on SQLite. It is for the few hot
// statements that go to database/sql directly, around gorm (which binds
// its own); q must hold no "?" other than placeholders.
func Rebind(d Dialect, q string) string {
	if d != Postgres {
		return q
	}
	var b strings.Builder
	b.Grow(len(q) + 16)
	n := 0
	for _, r := range q {
		if r == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

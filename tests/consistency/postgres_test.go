package consistency_test

import (
	"testing"

	"github.com/salesrank/salesrank/internal/testing/pgtest"
)

// postgresDSN returns the DSN of a fresh schema, dropped when t ends (see pgtest.Schema).
func postgresDSN(t *testing.T) string {
	t.Helper()
	dsn, _ := pgtest.Schema(t, "salesrank_consistency_")
	return dsn
}

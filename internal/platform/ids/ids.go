// Package ids makes identifiers: a short prefix naming the kind of thing
// (prd, loc, res, …) and a UUIDv7, so ids sort by creation time (friendly to
// B-tree indexes) and a stray id in a log says what it is.
package ids

import (
	"strings"

	"github.com/google/uuid"
)

// New returns prefix_<uuidv7 hex>.
func New(prefix string) string {
	u, err := uuid.NewV7()
	if err != nil {
		u = uuid.New() // v7 fails only if the clock does; v4 is still unique
	}
	return prefix + "_" + strings.ReplaceAll(u.String(), "-", "")
}

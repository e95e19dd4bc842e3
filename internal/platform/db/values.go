package db

import "strings"

// Tuples is the list of a multi-row VALUES clause: tuple (say "(?, ?)")
// n times, separated by commas. Writers that insert or update many rows in
// one statement build it with their own columns and casts around it.
func Tuples(tuple string, n int) string {
	if n <= 0 {
		return ""
	}
	var b strings.Builder
	b.Grow(n*(len(tuple)+2) - 2)
	b.WriteString(tuple)
	for range n - 1 {
		b.WriteString(", ")
		b.WriteString(tuple)
	}
	return b.String()
}

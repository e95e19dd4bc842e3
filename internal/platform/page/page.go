// Package page is the paging vocabulary shared by services and their HTTP
// surfaces: page numbers from 1, at most MaxPerPage items a page.
package page

// Limits of a page.
const (
	DefaultPerPage = 20
	MaxPerPage     = 100
)

// Request asks for one page.
type Request struct {
	Page    int `json:"page"`
	PerPage int `json:"per_page"`
}

// Normalize clamps a request to the allowed range, so a service never runs
// an unbounded query whatever its caller sent.
func (r Request) Normalize() Request {
	if r.Page < 1 {
		r.Page = 1
	}
	if r.PerPage < 1 {
		r.PerPage = DefaultPerPage
	}
	if r.PerPage > MaxPerPage {
		r.PerPage = MaxPerPage
	}
	return r
}

// Offset is the number of rows before this page.
func (r Request) Offset() int {
	r = r.Normalize()
	return (r.Page - 1) * r.PerPage
}

// Limit is the number of rows on this page.
func (r Request) Limit() int { return r.Normalize().PerPage }

// Result is one page of T and the total across all pages.
type Result[T any] struct {
	Items []T   `json:"items"`
	Total int64 `json:"total"`
}

package httpx

import (
	"net/url"
	"strconv"

	"github.com/retailco/pos/internal/platform/page"
)

// PageQuery is embedded in list inputs: page from 1, per_page up to 100.
type PageQuery struct {
	Page    int `query:"page" minimum:"1" default:"1" doc:"Page number, from 1"`
	PerPage int `query:"per_page" minimum:"1" maximum:"100" default:"20" doc:"Items per page (at most 100)"`
}

// Request converts the query to the services' paging type.
func (q PageQuery) Request() page.Request {
	return page.Request{Page: q.Page, PerPage: q.PerPage}.Normalize()
}

// Meta describes one page of a list.
type Meta struct {
	Page    int   `json:"page"`
	PerPage int   `json:"per_page"`
	Total   int64 `json:"total"`
}

// List is every list response: {"data": [...], "meta": {...}}.
type List[T any] struct {
	Data []T  `json:"data"`
	Meta Meta `json:"meta"`
}

// FromResult builds a list body from one page of a service's answer.
func FromResult[T any](r page.Result[T], req page.Request) List[T] {
	req = req.Normalize()
	return NewList(r.Items, req.Page, req.PerPage, r.Total)
}

// NewList builds a list body; a nil slice becomes [] so clients never see
// null.
func NewList[T any](items []T, page, perPage int, total int64) List[T] {
	if items == nil {
		items = []T{}
	}
	return List[T]{Data: items, Meta: Meta{Page: page, PerPage: perPage, Total: total}}
}

// PageValues is the query of one page, for Client adapters.
func PageValues(r page.Request) url.Values {
	r = r.Normalize()
	return url.Values{"page": {strconv.Itoa(r.Page)}, "per_page": {strconv.Itoa(r.PerPage)}}
}

// SetIf adds a query parameter when its value is not empty: a zero filter
// does not filter.
func SetIf(q url.Values, k, v string) {
	if v != "" {
		q.Set(k, v)
	}
}

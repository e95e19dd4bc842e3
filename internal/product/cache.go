package product

import (
	"slices"
	"strconv"
	"strings"

	"github.com/retailco/pos/internal/platform/page"
)

// The list pages are kept in a readcache.Versioned under the catalog
// version (migration 0002): served only while the version a request has
// just read still matches (see package readcache). The profile of
// catalog-100vu showed why: the list was a third of the server's CPU
// (gorm's Scan and the COUNT and page queries), where the version is one
// tiny read.

// pageKey is a normalized filter: the same question asked twice gets the
// same key.
type pageKey struct {
	search, categoryID, sku, ids string
	active                       int8 // 0 any, 1 active, 2 archived
	page, perPage                int
}

// keyOf is the key of f, whose page is normalized already.
func keyOf(f Filter) pageKey {
	k := pageKey{search: f.Search, categoryID: f.CategoryID, sku: f.SKU, page: f.Page.Page, perPage: f.Page.PerPage}
	if f.Active != nil {
		k.active = 2
		if *f.Active {
			k.active = 1
		}
	}
	if f.IDs != nil {
		// Each id prefixed with its length, so no two lists share a key
		// whatever their ids hold; the leading "#" tells an empty list
		// (no products) from no filter.
		var b strings.Builder
		b.WriteByte('#')
		for _, id := range f.IDs {
			b.WriteString(strconv.Itoa(len(id)))
			b.WriteByte(':')
			b.WriteString(id)
		}
		k.ids = b.String()
	}
	return k
}

// clonePage copies a page: Product holds only values (strings are
// immutable), so a copy of the slice shares nothing a caller could change.
func clonePage(p page.Result[Product]) page.Result[Product] {
	return page.Result[Product]{Items: slices.Clone(p.Items), Total: p.Total}
}

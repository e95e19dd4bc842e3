package product

import (
	"context"
	"net/http"
	"strings"

	"github.com/danielgtaylor/huma/v2"

	"github.com/retailco/pos/internal/platform/httpx"
)

// Routes mounts the catalog's HTTP surface. Reads are public (shoppers
// browse without logging in); writes are the admin's.
func Routes(api huma.API, svc Service) {
	h := handlers{svc: svc}
	httpx.Register(api, httpx.Op{Context: Name, ID: "list-products", Method: http.MethodGet, Path: "/products",
		Summary: "List products", Access: httpx.Public}, h.list)
	httpx.Register(api, httpx.Op{Context: Name, ID: "create-product", Method: http.MethodPost, Path: "/products",
		Summary: "Create a product", Status: http.StatusCreated, Access: httpx.Admin}, h.create)
	httpx.Register(api, httpx.Op{Context: Name, ID: "get-product", Method: http.MethodGet, Path: "/products/{id}",
		Summary: "Get a product", Access: httpx.Public}, h.get)
	httpx.Register(api, httpx.Op{Context: Name, ID: "update-product", Method: http.MethodPut, Path: "/products/{id}",
		Summary: "Update a product (fields left out keep their value)", Access: httpx.Admin}, h.update)
	httpx.Register(api, httpx.Op{Context: Name, ID: "delete-product", Method: http.MethodDelete, Path: "/products/{id}",
		Summary: "Archive a product", Status: http.StatusNoContent, Access: httpx.Admin}, h.delete)
	httpx.Register(api, httpx.Op{Context: Name, ID: "list-categories", Method: http.MethodGet, Path: "/categories",
		Summary: "List categories", Access: httpx.Public}, h.listCategories)
	httpx.Register(api, httpx.Op{Context: Name, ID: "create-category", Method: http.MethodPost, Path: "/categories",
		Summary: "Create a category", Status: http.StatusCreated, Access: httpx.Admin}, h.createCategory)
}

type handlers struct{ svc Service }

type idPath struct {
	ID string `path:"id" maxLength:"64"`
}

type listInput struct {
	httpx.PageQuery
	Search     string `query:"search" maxLength:"200" doc:"Matches name, SKU or description"`
	CategoryID string `query:"category_id" maxLength:"64"`
	Active     string `query:"active" enum:"true,false," doc:"true: only active, false: only archived"`
	SKU        string `query:"sku" maxLength:"64"`
	IDs        string `query:"ids" maxLength:"6600" doc:"Comma-separated product ids (at most 100)"`
}

func (h handlers) list(ctx context.Context, in *listInput) (*httpx.Reply[httpx.List[Product]], error) {
	f := Filter{Search: in.Search, CategoryID: in.CategoryID, SKU: in.SKU, Page: in.Request()}
	if in.Active != "" {
		active := in.Active == "true"
		f.Active = &active
	}
	if in.IDs != "" {
		f.IDs = strings.Split(in.IDs, ",")
	}
	res, err := h.svc.ListProducts(ctx, f)
	if err != nil {
		return nil, err
	}
	return httpx.OK(httpx.FromResult(res, f.Page)), nil
}

type createInput struct{ Body NewProduct }

func (h handlers) create(ctx context.Context, in *createInput) (*httpx.Reply[Product], error) {
	p, err := h.svc.CreateProduct(ctx, in.Body)
	if err != nil {
		return nil, err
	}
	return httpx.OK(p), nil
}

func (h handlers) get(ctx context.Context, in *idPath) (*httpx.Reply[Product], error) {
	p, err := h.svc.GetProduct(ctx, in.ID)
	if err != nil {
		return nil, err
	}
	return httpx.OK(p), nil
}

type updateInput struct {
	ID   string `path:"id" maxLength:"64"`
	Body ProductUpdate
}

func (h handlers) update(ctx context.Context, in *updateInput) (*httpx.Reply[Product], error) {
	p, err := h.svc.UpdateProduct(ctx, in.ID, in.Body)
	if err != nil {
		return nil, err
	}
	return httpx.OK(p), nil
}

func (h handlers) delete(ctx context.Context, in *idPath) (*httpx.NoContent, error) {
	return nil, h.svc.DeleteProduct(ctx, in.ID)
}

func (h handlers) listCategories(ctx context.Context, _ *struct{}) (*httpx.Reply[httpx.List[Category]], error) {
	cs, err := h.svc.ListCategories(ctx)
	if err != nil {
		return nil, err
	}
	return httpx.OK(httpx.NewList(cs, 1, len(cs), int64(len(cs)))), nil
}

type createCategoryInput struct{ Body NewCategory }

func (h handlers) createCategory(ctx context.Context, in *createCategoryInput) (*httpx.Reply[Category], error) {
	c, err := h.svc.CreateCategory(ctx, in.Body)
	if err != nil {
		return nil, err
	}
	return httpx.OK(c), nil
}

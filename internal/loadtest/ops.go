package loadtest

// Op is one operation the load test calls. Its ID is the operation id of
// the API's OpenAPI document, so the report and the thresholds
// (checkout:p95<300ms) speak the API's own vocabulary; Route is the path
// template, so every id of a path is one endpoint in the report.
type Op struct {
	ID     string
	Method string
	Route  string
}

// Name is "METHOD /route/{template}".
func (o Op) Name() string { return o.Method + " " + o.Route }

// apiPrefix is where every route lives (API.md). The load test is a
// client of the contract, not of the server's code: it imports nothing of
// the platform, so it measures what any client would see.
const apiPrefix = "/api/v1"

func op(id, method, path string) Op { return Op{ID: id, Method: method, Route: apiPrefix + path} }

// The operations the scenarios, the seeding and the invariant checks use.
var (
	opHealth = Op{ID: "health", Method: "GET", Route: "/health/live"}
	opWhoami = op("whoami", "GET", "/auth/whoami")

	opListProducts  = op("list-products", "GET", "/products")
	opGetProduct    = op("get-product", "GET", "/products/{id}")
	opCreateProduct = op("create-product", "POST", "/products")
	opUpdateProduct = op("update-product", "PUT", "/products/{id}")

	opListLocations  = op("list-locations", "GET", "/locations")
	opCreateLocation = op("create-location", "POST", "/locations")
	opListStock      = op("list-stock", "GET", "/inventory")
	opAdjustStock    = op("adjust-stock", "POST", "/inventory/adjustments")

	opRegister      = op("register-customer", "POST", "/auth/register")
	opLogin         = op("login-customer", "POST", "/auth/login")
	opMe            = op("get-my-customer", "GET", "/customers/me")
	opListCustomers = op("list-customers", "GET", "/customers")
	opCreateKey     = op("create-api-key", "POST", "/api-keys")
	opRevokeKey     = op("revoke-api-key", "DELETE", "/api-keys/{id}")

	opAddCartItem = op("add-cart-item", "POST", "/carts/{session_id}/items")
	opCalculate   = op("calculate-cart", "POST", "/carts/{session_id}/calculate")
	opClearCart   = op("clear-cart", "DELETE", "/carts/{session_id}")

	opCheckout     = op("checkout", "POST", "/checkout")
	opCancelOrder  = op("cancel-order", "POST", "/orders/{id}/cancel")
	opListSagas    = op("list-sagas", "GET", "/sagas")
	opGetSaga      = op("get-saga", "GET", "/sagas/{id}")
	opGetOrder     = op("get-order", "GET", "/orders/{id}")
	opListOrders   = op("list-orders", "GET", "/orders")
	opOrderSummary = op("order-summary", "GET", "/orders/summary")
	opPaySummary   = op("payment-summary", "GET", "/payments/summary")

	opListRegisters  = op("list-registers", "GET", "/registers")
	opCreateRegister = op("create-register", "POST", "/registers")
	opOpenSession    = op("open-register-session", "POST", "/registers/{id}/sessions")
	opGetSession     = op("get-register-session", "GET", "/registers/{id}/sessions/{sid}")
	opCloseSession   = op("close-register-session", "POST", "/registers/{id}/sessions/{sid}/close")
	opCreateSale     = op("create-sale", "POST", "/sales")
	opListSales      = op("list-sales", "GET", "/sales")
	opCreateReturn   = op("create-return", "POST", "/sales/{id}/returns")
	opDashboard      = op("get-dashboard", "GET", "/dashboard")

	opCreateClaim  = op("create-claim", "POST", "/claims")
	opListClaims   = op("list-claims", "GET", "/claims")
	opGetClaim     = op("get-claim", "GET", "/claims/{id}")
	opAssignClaim  = op("assign-claim", "POST", "/claims/{id}/assign")
	opStartClaim   = op("start-claim", "POST", "/claims/{id}/start")
	opResolveClaim = op("resolve-claim", "POST", "/claims/{id}/resolve")
	opCloseClaim   = op("close-claim", "POST", "/claims/{id}/close")
	opClaimEvents  = op("claim-events", "GET", "/claims/{id}/events")
)

// loadOps are the operations a scenario's journeys may call during the
// load phase: the endpoints a per-endpoint threshold may name.
var loadOps = []Op{
	opListProducts, opGetProduct, opMe, opListCustomers,
	opAddCartItem, opCalculate, opClearCart, opCheckout, opCancelOrder, opGetOrder,
	opOpenSession, opGetSession, opCloseSession, opCreateSale, opCreateReturn, opDashboard,
	opCreateClaim, opAssignClaim, opStartClaim, opResolveClaim, opCloseClaim, opClaimEvents,
}

// lookupOp finds a load-phase operation by id or by "METHOD /route".
func lookupOp(name string) (Op, bool) {
	for _, o := range loadOps {
		if o.ID == name || o.Name() == name {
			return o, true
		}
	}
	return Op{}, false
}

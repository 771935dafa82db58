package chatapi

import (
	"errors"
	"net/http"
	"regexp"

	"github.com/gorilla/mux"
)

// ErrNotFound and ErrVerbNotAllowed are what Router.Match returns for a
// path that is no Chat method, and for a known path with the wrong verb.
var (
	ErrNotFound       = errors.New("chatapi: no Chat method has this path")
	ErrVerbNotAllowed = errors.New("chatapi: the path is a Chat method, but not with this HTTP verb")
)

// Router matches a request's verb and path to a catalog method. It is
// built once from the catalog and is safe for concurrent use.
//
// Match reads r.URL.Path as it is: callers normalize the path first
// (the router never cleans or redirects).
type Router struct {
	mux *mux.Router
}

// A plain {name} matches one segment up to the next "/" or ":". Without
// the ":" the route for "/v1/spaces/{space}" would read
// "AAAA:completeImport" as a space name.
var plainVar = regexp.MustCompile(`\{([A-Za-z]+)\}`)

// NewRouter builds the route table from the catalog.
func NewRouter() *Router {
	r := mux.NewRouter().SkipClean(true)
	for _, m := range catalog {
		for _, p := range m.Paths {
			r.Path(plainVar.ReplaceAllString(p, "{$1:[^/:]+}")).Methods(m.Verb).Name(m.ID)
		}
	}
	return &Router{mux: r}
}

// Match returns the method a request calls and its path variables
// ("space", "message", …), ErrVerbNotAllowed when the path belongs to
// another verb, or ErrNotFound.
func (rt *Router) Match(r *http.Request) (*Method, map[string]string, error) {
	var rm mux.RouteMatch
	if !rt.mux.Match(r, &rm) {
		if errors.Is(rm.MatchErr, mux.ErrMethodMismatch) {
			return nil, nil, ErrVerbNotAllowed
		}
		return nil, nil, ErrNotFound
	}
	m := byID[rm.Route.GetName()]
	return m, rm.Vars, nil
}

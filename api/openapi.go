package api

import (
	"net/http"
	"sync"

	"github.com/gin-gonic/gin"

	"github.com/go-websocket/go-websocket/docs"
)

var openAPI = sync.OnceValues(docs.OpenAPIJSON)

// OpenAPI serves docs/openapi.yaml as JSON.
func (h *Handlers) OpenAPI(c *gin.Context) {
	b, err := openAPI()
	if err != nil {
		h.fail(c, err)
		return
	}
	c.Data(http.StatusOK, "application/json; charset=utf-8", b)
}

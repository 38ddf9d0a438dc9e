package web

import (
	"io/fs"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"
)

// clientFiles are the client library's files, served at the root whatever
// pages are switched on: gows.js (plain script and CommonJS), gows.mjs (ES
// module) and gows.d.ts (TypeScript types).
var clientFiles = map[string]string{
	"gows.js":   "text/javascript; charset=utf-8",
	"gows.mjs":  "text/javascript; charset=utf-8",
	"gows.d.ts": "text/plain; charset=utf-8",
}

// registerClient serves the client library from the embedded static files.
func registerClient(e *gin.Engine, static fs.FS) {
	for name, typ := range clientFiles {
		b, err := fs.ReadFile(static, name)
		if err != nil {
			panic(err) // the embedded tree is fixed at build time
		}
		h := func(c *gin.Context) {
			c.Header("Cache-Control", "no-cache")
			c.Header("X-Content-Type-Options", "nosniff")
			if strings.HasSuffix(name, "js") {
				c.Header("Access-Control-Allow-Origin", "*")
			}
			c.Data(http.StatusOK, typ, b)
		}
		e.GET("/"+name, h)
		e.HEAD("/"+name, h)
	}
}

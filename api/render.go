// Package api holds one handler per endpoint family: decode and validate the
// request, call the node, render the envelope.
package api

import (
	"errors"
	"net/http"

	"github.com/gin-gonic/gin"
	"go.uber.org/zap"

	"github.com/go-websocket/go-websocket/define"
)

// Context keys set by the routers' middleware.
const (
	KeySystemID  = "gows.systemId"
	KeyRequestID = "gows.requestId"
	KeyErrCode   = "gows.code"
)

// requestIDKey carries the request id in the context handed to the node.
type requestIDKey struct{}

// OK renders a success envelope.
func OK(c *gin.Context, data any) {
	c.Set(KeyErrCode, define.CodeSuccess)
	if r, ok := data.(rawData); ok {
		// Large answers that render themselves: encoding/json would check
		// and compact their bytes once more.
		b, err := r.appendJSON(append(make([]byte, 0, 4096), `{"code":0,"msg":"success","data":`...))
		if err == nil {
			c.Data(http.StatusOK, "application/json; charset=utf-8", append(b, '}'))
			return
		}
	}
	c.JSON(http.StatusOK, define.Response{Code: define.CodeSuccess, Msg: "success", Data: data})
}

// rawData is success data that writes its own (valid, compact) JSON.
type rawData interface {
	appendJSON(b []byte) ([]byte, error)
}

// Fail renders an error envelope; errors that are not *define.Error become
// 10011 and are logged with the request id (never shown to the caller).
func Fail(c *gin.Context, log *zap.Logger, err error) {
	var e *define.Error
	if !errors.As(err, &e) {
		rid, _ := c.Get(KeyRequestID)
		log.Error("internal error", zap.Any("requestId", rid), zap.String("path", c.Request.URL.Path), zap.Error(err))
		e = &define.Error{Code: define.CodeInternal, Msg: "internal error, request id " + toString(rid)}
	}
	c.Set(KeyErrCode, e.Code)
	c.AbortWithStatusJSON(e.HTTPStatus(), define.Response{Code: e.Code, Msg: e.Msg, Data: nil})
}

func toString(v any) string {
	s, _ := v.(string)
	return s
}

package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"

	"go.uber.org/zap"

	"github.com/go-websocket/go-websocket/define"
)

// MaxBatchOps bounds the ops of one batch call.
const MaxBatchOps = 1000

// batchOps are the op names batch accepts, in the order of the docs. An op
// this node has no endpoint for (users) answers 10001 in its result.
var batchOps = []string{"send_to_client", "send_to_clients", "send_to_group", "send_to_user",
	"send_to_system", "bind_to_group", "unbind_from_group", "bind_to_user", "close_client"}

type batchReq struct {
	Ops []json.RawMessage `json:"ops"`
}

type batchOpName struct {
	Op string `json:"op"`
}

// BatchResult is the result of one op of a batch: the envelope the op's own
// endpoint would have answered.
type BatchResult struct {
	Code int    `json:"code"`
	Msg  string `json:"msg"`
	Data any    `json:"data"`
}

type batchResp struct {
	Results []BatchResult `json:"results"`
}

// batch runs up to MaxBatchOps ops in order. The whole call is refused
// (nothing runs) when an op is not an object or names no known op; a failing
// op does not stop the rest.
func (h *Handlers) batch(ctx context.Context, sys string, body []byte) (any, error) {
	if res, ok := h.sendsOnly(ctx, sys, body); ok {
		return res, nil
	}
	var req batchReq
	if err := decodeBytes(body, &req, false); err != nil {
		return nil, err
	}
	switch {
	case req.Ops == nil:
		return nil, fieldErr("ops", "is required (an array of ops)")
	case len(req.Ops) > MaxBatchOps:
		return nil, fieldErr("ops", "has %d entries; at most %d per call", len(req.Ops), MaxBatchOps)
	}
	runs := make([]op, len(req.Ops))
	names := make([]string, len(req.Ops))
	// One decode per op gives its name and, for send_to_client without an
	// ack (the op backends send by the thousand), every field it needs.
	fast := make([]*sendReq, len(req.Ops))
	for i, raw := range req.Ops {
		var f opFields
		name := ""
		if err := decodeBytes(raw, &f, false); err == nil {
			name = f.Op
			if name == "send_to_client" && !f.Ack && f.AckTimeout == "" {
				fast[i] = &sendReq{ClientID: f.ClientID, Message: f.Message}
			}
		} else {
			var n batchOpName
			if err := decodeBytes(raw, &n, false); err != nil {
				var e *define.Error
				if errors.As(err, &e) {
					return nil, define.Errorf(define.CodeInvalidRequest, "ops[%d]: %s", i, e.Msg)
				}
				return nil, err
			}
			name = n.Op
		}
		if !known(name) {
			return nil, define.Errorf(define.CodeInvalidRequest, "ops[%d]: field op %q is not one of %v", i, name, batchOps)
		}
		runs[i], names[i] = h.ops[name], name
	}
	res := batchResp{Results: make([]BatchResult, len(req.Ops))}
	ctx, flush := h.svc.Cork(ctx)
	defer flush()
	for i, run := range runs {
		var data any
		var err error
		switch {
		case run == nil:
			err = define.Errorf(define.CodeInvalidRequest, "op %s is not supported by this node", names[i])
		case fast[i] != nil:
			data, err = h.sendToClientReq(ctx, sys, fast[i])
		default:
			// What is corked leaves first: an op that waits for a client
			// (an ack) must find the earlier frames written.
			flush()
			data, err = run(ctx, sys, req.Ops[i])
		}
		res.Results[i] = h.result(ctx, data, err)
	}
	return res, nil
}

// opFields are the fields of every op, decoded in one pass.
type opFields struct {
	Op        string `json:"op"`
	ClientID  string `json:"clientId"`
	GroupName string `json:"groupName"`
	UserID    string `json:"userId"`
	Extend    string `json:"extend"`
	define.Message
	ackFields
}

var (
	opKey      = []byte(`"op"`)
	sendClient = []byte(`:"send_to_client"`)
	ackKey     = []byte(`"ack`)
)

// onlySends counts the "op" keys of body, all followed by
// :"send_to_client"; ok is false when one is not (a hint only: the decoded
// ops are checked again).
func onlySends(body []byte) (n int, ok bool) {
	for i := 0; ; {
		j := bytes.Index(body[i:], opKey)
		if j < 0 {
			return n, n > 0
		}
		i += j + len(opKey)
		if !bytes.HasPrefix(body[i:], sendClient) {
			return 0, false
		}
		if n++; n > MaxBatchOps {
			return 0, false
		}
	}
}

// sendsOnly runs a batch made only of send_to_client ops without acks
// (what backends send by the thousand) with one decode of the whole body.
// ok is false, and nothing ran, for any other batch, and for one that does
// not decode as such: the general path then runs it, with its per-op
// errors.
func (h *Handlers) sendsOnly(ctx context.Context, sys string, body []byte) (any, bool) {
	n, ok := onlySends(body)
	if !ok || bytes.Contains(body, ackKey) {
		return nil, false
	}
	var req struct {
		Ops []opFields `json:"ops"`
	}
	if decodeBytes(body, &req, false) != nil || len(req.Ops) != n {
		return nil, false
	}
	for i := range req.Ops {
		if req.Ops[i].Op != "send_to_client" || req.Ops[i].Ack || req.Ops[i].AckTimeout != "" {
			return nil, false
		}
	}
	res := batchResp{Results: make([]BatchResult, len(req.Ops))}
	ctx, flush := h.svc.Cork(ctx)
	defer flush()
	for i := range req.Ops {
		f := &req.Ops[i]
		data, err := h.sendToClientReq(ctx, sys, &sendReq{ClientID: f.ClientID, Message: f.Message})
		res.Results[i] = h.result(ctx, data, err)
	}
	return res, true
}

func known(name string) bool {
	for _, n := range batchOps {
		if n == name {
			return true
		}
	}
	return false
}

// result renders one op's outcome; an error that is not an API error is
// logged and becomes 10011, as on the op's own endpoint.
func (h *Handlers) result(ctx context.Context, data any, err error) BatchResult {
	if err == nil {
		return BatchResult{Code: define.CodeSuccess, Msg: "success", Data: data}
	}
	var e *define.Error
	if !errors.As(err, &e) {
		rid, _ := ctx.Value(requestIDKey{}).(string)
		h.log.Error("internal error in batch op", zap.String("requestId", rid), zap.Error(err))
		e = &define.Error{Code: define.CodeInternal, Msg: "internal error, request id " + rid}
	}
	return BatchResult{Code: e.Code, Msg: e.Msg}
}

// MarshalJSON writes the results; the common one, a send's messageId,
// without reflection (a batch answers up to 1,000 of them).
func (r batchResp) MarshalJSON() ([]byte, error) {
	return r.appendJSON(make([]byte, 0, 16+len(r.Results)*80))
}

func (r batchResp) appendJSON(b []byte) ([]byte, error) {
	b = append(b, `{"results":[`...)
	for i, res := range r.Results {
		if i > 0 {
			b = append(b, ',')
		}
		if m, ok := res.Data.(messageID); ok && res.Code == 0 && res.Msg == "success" && isPlainID(m.MessageID) {
			b = append(b, `{"code":0,"msg":"success","data":{"messageId":"`...)
			b = append(b, m.MessageID...)
			b = append(b, `"}}`...)
			continue
		}
		one, err := json.Marshal(res)
		if err != nil {
			return nil, err
		}
		b = append(b, one...)
	}
	return append(b, "]}"...), nil
}

// isPlainID reports whether id needs no JSON escaping (messageIds are
// letters and digits).
func isPlainID(id string) bool {
	for i := 0; i < len(id); i++ {
		c := id[i]
		if c < 0x20 || c == '"' || c == '\\' || c >= 0x7f || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}

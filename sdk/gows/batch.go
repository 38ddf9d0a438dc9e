package gows

import (
	"context"
	"encoding/json"
	"fmt"
)

// Op is one op of a batch; build it with the Op* functions.
type Op map[string]any

func op(name string, m *Message, fields map[string]any) Op {
	o := Op{"op": name}
	if m != nil {
		if m.SendUserID != "" {
			o["sendUserId"] = m.SendUserID
		}
		if m.Code != 0 {
			o["code"] = m.Code
		}
		if m.Msg != "" {
			o["msg"] = m.Msg
		}
		if m.Data != nil {
			o["data"] = m.Data
		}
	}
	for k, v := range fields {
		o[k] = v
	}
	return o
}

// OpSendToClient sends m to one client.
func OpSendToClient(clientID string, m Message) Op {
	return op("send_to_client", &m, map[string]any{"clientId": clientID})
}

// OpSendToClients sends m to several clients.
func OpSendToClients(clientIDs []string, m Message) Op {
	return op("send_to_clients", &m, map[string]any{"clientIds": clientIDs})
}

// OpSendToGroup sends m to a group.
func OpSendToGroup(group string, m Message) Op {
	return op("send_to_group", &m, map[string]any{"groupName": group})
}

// OpSendToUser sends m to a user's clients.
func OpSendToUser(userID string, m Message) Op {
	return op("send_to_user", &m, map[string]any{"userId": userID})
}

// OpSendToSystem sends m to every client of the system.
func OpSendToSystem(m Message) Op { return op("send_to_system", &m, nil) }

// OpBindToGroup puts a client in a group.
func OpBindToGroup(clientID, group string, mem Member) Op {
	f := map[string]any{"clientId": clientID, "groupName": group}
	if mem.UserID != "" {
		f["userId"] = mem.UserID
	}
	if mem.Extend != "" {
		f["extend"] = mem.Extend
	}
	return op("bind_to_group", nil, f)
}

// OpUnbindFromGroup takes a client out of a group.
func OpUnbindFromGroup(clientID, group string) Op {
	return op("unbind_from_group", nil, map[string]any{"clientId": clientID, "groupName": group})
}

// OpBindToUser makes a client belong to a user.
func OpBindToUser(clientID, userID string) Op {
	return op("bind_to_user", nil, map[string]any{"clientId": clientID, "userId": userID})
}

// OpCloseClient closes a client.
func OpCloseClient(clientID string) Op {
	return op("close_client", nil, map[string]any{"clientId": clientID})
}

// MaxBatchOps is the most ops one Batch call takes.
const MaxBatchOps = 1000

// Result is the outcome of one op: Err is nil or an *Error with the op's
// code; Data is the data its endpoint would have answered.
type Result struct {
	Data json.RawMessage
	Err  error
}

// Decode decodes a successful op's data into v.
func (r Result) Decode(v any) error {
	if r.Err != nil {
		return r.Err
	}
	return json.Unmarshal(r.Data, v)
}

// Batch runs ops in order in one call; a failing op does not stop the
// others. An error is returned only when the call as a whole failed (more
// than MaxBatchOps, an unknown op, the node unreachable).
func (c *Client) Batch(ctx context.Context, ops []Op) ([]Result, error) {
	if len(ops) > MaxBatchOps {
		return nil, &Error{Code: CodeInvalidRequest, Msg: fmt.Sprintf("%d ops; at most %d per batch", len(ops), MaxBatchOps), Endpoint: "batch"}
	}
	if ops == nil {
		ops = []Op{}
	}
	var out struct {
		Results []envelope `json:"results"`
	}
	if err := c.Call(ctx, "batch", map[string]any{"ops": ops}, &out); err != nil {
		return nil, err
	}
	res := make([]Result, len(out.Results))
	for i, r := range out.Results {
		res[i].Data = r.Data
		if r.Code != 0 {
			res[i].Err = &Error{Code: r.Code, Msg: r.Msg, HTTPStatus: 200, Endpoint: fmt.Sprintf("batch op %d (%v)", i, ops[i]["op"])}
		}
	}
	return res, nil
}

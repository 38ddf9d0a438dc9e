package e2e

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// The calls of woodylan/go-websocket's PHP SDK, sent exactly as it sends
// them (POST to /api/<name>, "Content-Type: application/json", a
// "SystemId" header, data json_encode'd into a string), answer code 0 and do
// what they did; a client connected on the old /ws path receives the
// string as sent. docs/MIGRATING.md lists these calls as mapping 1:1.
func TestPHPSDKCallsMapOneToOne(t *testing.T) {
	t.Parallel()
	n := startNode(t, nil)
	sdk := func(path, systemID string, body map[string]any) json.RawMessage {
		t.Helper()
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		h := map[string]string{"Content-Type": "application/json", "SystemId": systemID}
		r, err := n.do("POST", path, h, b)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		var env struct {
			Code int             `json:"code"`
			Msg  string          `json:"msg"`
			Data json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal(r.Body, &env); err != nil || env.Code != 0 || env.Msg != "success" {
			t.Fatalf("%s: %s", path, r.Body)
		}
		return env.Data
	}

	// register($systemId): no SystemId value.
	sdk("/api/register", "", map[string]any{"systemId": "php-app"})
	a := n.dialOpts2(t, "/ws", "php-app")
	b := n.dialOpts2(t, "/ws", "php-app")

	// sendToClientId: array data arrives as the JSON string the SDK made.
	sdk("/api/send_to_client", "php-app", map[string]any{
		"clientId": a.id, "sendUserId": "u1", "code": 7, "msg": "m", "data": `{"order":42}`})
	if f := a.expectPush(t, 5*time.Second); string(f.Data) != `"{\"order\":42}"` || f.Code != 7 || f.SendUserID != "u1" {
		t.Errorf("sendToClientId pushed %s", f.Raw)
	}
	// sendToClientIds.
	sdk("/api/send_to_clients", "php-app", map[string]any{
		"clientIds": []string{a.id, b.id}, "sendUserId": "u1", "code": 0, "msg": "", "data": "hi both"})
	for _, c := range []*wsClient{a, b} {
		if f := c.expectPush(t, 5*time.Second); string(f.Data) != `"hi both"` {
			t.Errorf("sendToClientIds pushed %s", f.Raw)
		}
	}
	// bindToGroup($systemId, $groupName, $clientId, $userId, $extend).
	for _, c := range []*wsClient{a, b} {
		sdk("/api/bind_to_group", "php-app", map[string]any{"groupName": "room", "clientId": c.id, "userId": "", "extend": ""})
	}
	// getOnlineList with and without a group.
	for _, group := range []string{"room", ""} {
		var list struct {
			Count int      `json:"count"`
			List  []string `json:"list"`
		}
		if err := json.Unmarshal(sdk("/api/get_online_list", "php-app", map[string]any{"groupName": group}), &list); err != nil || list.Count != 2 || len(list.List) != 2 {
			t.Errorf("getOnlineList(%q): %+v %v", group, list, err)
		}
	}
	// sendToGroup: both members get it (after their membership events).
	sdk("/api/send_to_group", "php-app", map[string]any{"groupName": "room", "sendUserId": "u2", "code": 0, "msg": "", "data": "to the room"})
	for _, c := range []*wsClient{a, b} {
		for i := 0; ; i++ {
			f := c.expectPush(t, 5*time.Second)
			if string(f.Data) == `"to the room"` {
				break
			}
			if i > 5 || (f.Code != 1001 && f.Code != 1002) {
				t.Fatalf("sendToGroup: unexpected frame %s", f.Raw)
			}
		}
	}
	// closeClient.
	sdk("/api/close_client", "php-app", map[string]any{"clientId": a.id})
	a.expectClose(t, 1000, 5*time.Second)
}

// dialOpts2 connects a client on path (the old /ws, say) and closes it when
// the test ends.
func (n *node) dialOpts2(t *testing.T, path, systemID string) *wsClient {
	t.Helper()
	c, err := n.dialOpts(systemID, dialOpt{path: path})
	if err != nil {
		t.Fatalf("dial %s on %s: %v", systemID, path, err)
	}
	t.Cleanup(c.abort)
	if !strings.HasPrefix(path, "/") {
		t.Fatal("path")
	}
	return c
}

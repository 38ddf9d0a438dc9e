package browser

import (
	"fmt"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/go-websocket/go-websocket/define"
)

// The demo page on a node with sessions, reached through a proxy that can
// cut every connection: after a network drop the page's GowsClient
// reconnects by itself and resumes the session: the same clientId, still in
// its group (no second join), and the message sent while it was away shown.
func TestDemoPageResumesAfterDrop(t *testing.T) {
	s := newSessionNode(t)
	s.post(t, "register", "", map[string]string{"systemId": "demo"})
	p := openTab(t, "demo-resume", "http://"+s.proxy+"/")
	id := waitClientID(p)
	checkGowsClient(p, id)
	p.do(chromedp.SetValue(chromedp.ID("nickname"), "carol"), chromedp.Click(chromedp.ID("joinBtn")))
	wait[bool](p, "carol in #lobby", `document.getElementById('room').textContent === '#lobby'`)
	wait[string](p, "carol's join event", exprEvent(define.MsgCodeJoin, id))

	s.cut()
	wait[bool](p, "the note of the lost connection", `[...document.querySelectorAll('#log li.note.error')].some(li => li.textContent.includes('connection lost'))`)
	s.post(t, "send_to_group", "demo", map[string]any{"groupName": "lobby", "sendUserId": "backend",
		"data": map[string]string{"text": "sent while you were away"}})
	wait[string](p, "the message sent after the drop", exprMessage("", "sent while you were away"))
	wait[bool](p, "connected again, resumed, in #lobby", fmt.Sprintf(`document.getElementById('status').textContent === 'Connected' &&
		document.getElementById('clientId').textContent === %s && document.getElementById('room').textContent === '#lobby' &&
		[...document.querySelectorAll('#log li.note')].some(li => li.textContent.startsWith('Resumed the session'))`, js(id)))
	checkGowsClient(p, id)
	if n := eval[int](p, fmt.Sprintf(`document.querySelectorAll('#log li.event[data-code="%d"][data-client-id=' + CSS.escape(%s) + ']').length`, define.MsgCodeJoin, js(id))); n != 1 {
		t.Errorf("%d join events of carol, want 1 (the resumed session kept its group)", n)
	}
	// The page's group is still usable: a message through its composer.
	p.typeInto("text", "back again")
	p.do(chromedp.Click(chromedp.ID("sendBtn")))
	wait[string](p, "carol's message after the resume", exprMessage("", "back again"))
}

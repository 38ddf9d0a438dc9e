package gows_test

import (
	"context"
	"errors"
	"log"
	"net/http"

	"github.com/go-websocket/go-websocket/sdk/gows"
)

func Example() {
	ctx := context.Background()
	c := gows.New("http://127.0.0.1:7800", "my-system", gows.WithToken("my-api-token"))
	id, err := c.SendToClient(ctx, "a-client-id", gows.Message{Data: map[string]string{"text": "hello"}})
	var apiErr *gows.Error
	switch {
	case errors.As(err, &apiErr) && apiErr.Code == gows.CodeClientOffline:
		log.Print("the client is gone")
	case err != nil:
		log.Fatal(err)
	default:
		log.Print("sent ", id)
	}
}

func ExampleClient_Batch() {
	c := gows.New("http://127.0.0.1:7800", "my-system")
	results, err := c.Batch(context.Background(), []gows.Op{
		gows.OpSendToClient("client-1", gows.Message{Data: "one"}),
		gows.OpSendToGroup("room", gows.Message{Data: "two"}),
	})
	if err != nil {
		log.Fatal(err) // the batch as a whole was refused
	}
	for i, r := range results {
		if r.Err != nil {
			log.Printf("op %d: %v", i, r.Err)
		}
	}
}

func ExampleParseWebhook() {
	secret := "the webhookSecret register answered"
	http.HandleFunc("/gows", func(w http.ResponseWriter, r *http.Request) {
		p, err := gows.ParseWebhook(r, secret)
		if err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		for _, ev := range p.Events {
			log.Printf("%s %s %s", ev.Type, ev.ClientID, ev.Reason) // dedupe by ev.ID
		}
		w.WriteHeader(http.StatusNoContent)
	})
}

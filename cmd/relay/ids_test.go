package main_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// TestClientIDsAreNotReusedAfterRestart restarts the relay process and checks
// that no client id of the first run comes back: a backend that remembered
// "client N is Ann" must not reach a stranger after a restart.
func TestClientIDsAreNotReusedAfterRestart(t *testing.T) {
	bin := buildRelay(t)
	port := freePort(t)
	run := func() []int64 {
		cmd := exec.Command(bin)
		cmd.Env = []string{fmt.Sprintf("PORT=%d", port), "RELAY_HOST=127.0.0.1"}
		var logs lockedBuffer // the child writes while a failing test reads
		cmd.Stderr = &logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() {
			cmd.Process.Kill() // no goodbye: ids must not depend on a clean exit
			cmd.Wait()
		}()
		base := fmt.Sprintf("http://127.0.0.1:%d", port)
		for deadline := time.Now().Add(10 * time.Second); ; {
			resp, err := http.Get(base + "/readyz")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == 200 {
					break
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("never ready: %v\n%s", err, logs.String())
			}
			time.Sleep(10 * time.Millisecond)
		}
		var ids []int64
		for range 3 {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			ws, _, err := websocket.Dial(ctx, fmt.Sprintf("ws://127.0.0.1:%d/", port), nil)
			if err != nil {
				cancel()
				t.Fatal(err)
			}
			ws.Write(ctx, websocket.MessageText, []byte(`{"cmd":"JOIN","channel":"c","protocol":"p"}`))
			_, data, err := ws.Read(ctx)
			cancel()
			var joined struct {
				Cmd string `json:"cmd"`
				ID  int64  `json:"id"`
			}
			if err != nil || json.Unmarshal(data, &joined) != nil || joined.Cmd != "JOINED" {
				t.Fatalf("join: %s %v", data, err)
			}
			ids = append(ids, joined.ID)
			ws.CloseNow()
		}
		return ids
	}
	first := run()
	second := run()
	for _, id := range append(append([]int64{}, first...), second...) {
		if id <= 0 || id >= 1<<53 {
			t.Fatalf("id %d is not in 1..2^53-1", id)
		}
	}
	last := first[len(first)-1]
	for _, id := range second {
		if id <= last {
			t.Fatalf("after a restart id %d came back at or below the first run's last id %d (first run %v, second %v)", id, last, first, second)
		}
	}
}

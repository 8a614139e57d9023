package protocol_test

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/relay-project/relay/relay/protocol"
)

// TestCloseReasonsDocumented: every close reason (a value of
// relay_disconnects_total{reason}) has a row in PROTOCOL.md's close-code
// table with the code it sends, so the table names every reason a client
// or an operator can see and none the relay never uses.
func TestCloseReasonsDocumented(t *testing.T) {
	b, err := os.ReadFile("PROTOCOL.md")
	if err != nil {
		t.Fatal(err)
	}
	_, table, ok := strings.Cut(string(b), "\nClose codes,")
	if !ok {
		t.Fatal(`PROTOCOL.md has no "Close codes," table`)
	}
	var rows []string // the table: the first run of lines starting with |
	for _, l := range strings.Split(table, "\n") {
		if strings.HasPrefix(l, "|") {
			rows = append(rows, l)
		} else if len(rows) > 0 {
			break
		}
	}
	table = strings.Join(rows, "\n")
	for _, r := range protocol.CloseReasons() {
		t.Run(r.String(), func(t *testing.T) {
			code := fmt.Sprintf("| %d |", r.Status())
			if r == protocol.CloseClientGone {
				code = "| none |" // nothing is sent
			}
			for _, row := range rows {
				if strings.HasPrefix(row, code) && strings.Contains(row, "`"+r.String()+"`") {
					return
				}
			}
			t.Errorf("no row %s `%s` … in PROTOCOL.md's close-code table:\n%s", code, r, table)
		})
	}
}

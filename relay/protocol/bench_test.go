package protocol_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/relay-project/relay/relay/protocol"
)

// benchMessage is a 200-byte broadcast as relay-bench sends it.
var benchMessage = []byte(`{"cmd":"B","channel":1,"to":-1,"seq":123456,"t":987654321,"p":"` +
	strings.Repeat("x", 200-64) + `"}`)

// BenchmarkDecodeMessage is the read side of every message: decode, then the
// checks the relay runs before fan-out (channel number, to).
func BenchmarkDecodeMessage(b *testing.B) {
	var req protocol.Request
	b.ReportAllocs()
	b.SetBytes(int64(len(benchMessage)))
	for b.Loop() {
		if err := protocol.Decode(benchMessage, &req); err != nil {
			b.Fatal(err)
		}
		if _, code := protocol.ChannelNumber(&req); code != "" {
			b.Fatal(code)
		}
		raw, ok := req.Get("to")
		if !ok {
			b.Fatal("no to")
		}
		if to, ok := protocol.Int(raw); !ok || to != -1 {
			b.Fatal("bad to")
		}
	}
}

// BenchmarkEncodeMessage is the frame built once per broadcast.
func BenchmarkEncodeMessage(b *testing.B) {
	var req protocol.Request
	if err := protocol.Decode(benchMessage, &req); err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		buf = protocol.AppendMessage(buf[:0], 1, 42, &req)
	}
	if len(buf) < len(benchMessage) {
		b.Fatalf("encoded %d bytes", len(buf))
	}
}

// distinctKeys is a message of n distinct keys, each given twice (the
// second value wins), as an attacker would send to buy CPU.
func distinctKeys(n int) []byte {
	var b strings.Builder
	b.WriteString(`{"cmd":"B","channel":1`)
	for range 2 {
		for i := range n {
			fmt.Fprintf(&b, `,"k%d":%d`, i, i)
		}
	}
	b.WriteString("}")
	return []byte(b.String())
}

// BenchmarkDecodeDistinctKeys shows decoding cost grows linearly with the
// key count: ns/key stays flat from 500 to 8,000 keys.
func BenchmarkDecodeDistinctKeys(b *testing.B) {
	for _, n := range []int{500, 1000, 2000, 4000, 8000} {
		msg := distinctKeys(n)
		b.Run(fmt.Sprintf("keys=%d", n), func(b *testing.B) {
			var req protocol.Request
			b.SetBytes(int64(len(msg)))
			b.ReportAllocs()
			for b.Loop() {
				if err := protocol.Decode(msg, &req); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/key")
		})
	}
}

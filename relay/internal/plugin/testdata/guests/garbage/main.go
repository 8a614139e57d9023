// Command garbage is a test plugin written against the raw ABI that answers
// with output that breaks it: an unknown verdict, an output outside memory,
// or a truncated record, chosen by the first byte of the message cmd.
package main

import "unsafe"

var buf = make([]byte, 1<<16)
var out = []byte{34, 0, 100, 0, 0, 0, '{'} // tag body, length 100, only 1 byte

func main() {}

//go:wasmexport relay_abi_version
func abiVersion() int32 { return 1 }

//go:wasmexport relay_buffer
func buffer(n int32) int32 {
	if int(n) > len(buf) {
		buf = make([]byte, n)
	}
	return int32(uintptr(unsafe.Pointer(&buf[0])))
}

//go:wasmexport relay_filter_message
func filter(n int32) int64 {
	// Find the cmd field (tag 33) in the input record.
	rec := buf[:n]
	var cmd byte
	for len(rec) >= 6 {
		tag := uint16(rec[0]) | uint16(rec[1])<<8
		l := int(uint32(rec[2]) | uint32(rec[3])<<8 | uint32(rec[4])<<16 | uint32(rec[5])<<24)
		if tag == 33 && l > 0 {
			cmd = rec[6]
		}
		rec = rec[6+l:]
	}
	switch cmd {
	case 'v': // unknown verdict
		return 77 << 56
	case 'o': // output outside memory
		return 0<<56 | 100<<32 | 0xFFFFFF00
	case 't': // truncated record
		return 0<<56 | int64(len(out))<<32 | int64(uint32(uintptr(unsafe.Pointer(&out[0]))))
	}
	return 0
}

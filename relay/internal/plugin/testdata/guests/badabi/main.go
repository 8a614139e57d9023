// Command badabi claims a plugin ABI version the relay does not support.
package main

import "unsafe"

var buf = make([]byte, 1<<16)

func main() {}

//go:wasmexport relay_abi_version
func abiVersion() int32 { return 2 }

//go:wasmexport relay_buffer
func buffer(n int32) int32 { return int32(uintptr(unsafe.Pointer(&buf[0]))) }

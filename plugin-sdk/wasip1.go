//go:build wasip1

package sdk

import (
	"time"
	"unsafe"
)

// exchange is the guest-owned buffer the host writes inputs into. It lives
// in a package variable so the GC never frees it while the host holds its
// address.
var exchange []byte

//go:wasmimport relay log
func hostLog(level int32, msg string)

//go:wasmimport relay now
func hostNow() int64

func logMessage(level int32, msg string) { hostLog(level, msg) }

// Now returns the host's wall clock.
func Now() time.Time { return time.Unix(0, hostNow()) }

//go:wasmexport relay_abi_version
func exportABIVersionFn() int32 { return abiVersion }

//go:wasmexport relay_hooks
func exportHooksFn() int32 { return hooksMask() }

//go:wasmexport relay_buffer
func exportBufferFn(size int32) int32 {
	if size < 0 {
		return 0
	}
	if size < 64<<10 {
		size = 64 << 10
	}
	if int(size) > len(exchange) {
		exchange = make([]byte, size)
	}
	return int32(uintptr(unsafe.Pointer(&exchange[0])))
}

func run(h hookID, n int32) int64 {
	if n < 0 || int(n) > len(exchange) {
		output.reset()
		output.str(tagMessage, "input length outside the exchange buffer")
		return pack(verdictError, output.b)
	}
	v := dispatch(h, exchange[:n])
	return pack(v, output.b)
}

// pack builds the i64 result: verdict in bits 56..63, output length in bits
// 32..55, output address in bits 0..31. output.b stays referenced by the
// package variable until the next call, after the host has copied it.
func pack(verdict uint8, out []byte) int64 {
	if len(out) == 0 {
		return int64(verdict) << 56
	}
	if len(out) > maxOutputLen {
		return int64(verdictError) << 56
	}
	return int64(verdict)<<56 | int64(len(out))<<32 | int64(uint32(uintptr(unsafe.Pointer(&out[0]))))
}

//go:wasmexport relay_configure
func exportConfigureFn(n int32) int64 { return run(hookConfigure, n) }

//go:wasmexport relay_authorize_join
func exportAuthorizeJoinFn(n int32) int64 { return run(hookJoin, n) }

//go:wasmexport relay_filter_message
func exportFilterMessageFn(n int32) int64 { return run(hookFilter, n) }

//go:wasmexport relay_on_token_create
func exportOnTokenCreateFn(n int32) int64 { return run(hookToken, n) }

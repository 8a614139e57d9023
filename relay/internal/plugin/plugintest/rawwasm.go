package plugintest

import (
	"os"
	"path/filepath"
	"testing"
)

// RawFunc is one exported function of a hand-assembled module: its name,
// its signature and a body that returns a constant.
type RawFunc struct {
	Name    string
	Params  int   // number of i32 parameters (0 or 1)
	Result  byte  // 0x7f i32 or 0x7e i64
	Returns int64 // the constant returned
}

// RawModule writes a tiny hand-assembled wasm module to a temporary file
// and returns its path: two pages of exported memory, the given functions,
// and data placed at the given addresses. Tests use it for plugins that
// break the ABI on purpose, without a toolchain and with no compile cost.
func RawModule(t testing.TB, name string, funcs []RawFunc, data map[uint32][]byte) string {
	t.Helper()
	var types, fsec, exports, code []byte
	types = uleb(types, uint64(len(funcs)))
	fsec = uleb(fsec, uint64(len(funcs)))
	exports = uleb(exports, uint64(len(funcs)+1))
	code = uleb(code, uint64(len(funcs)))
	for i, f := range funcs {
		types = append(types, 0x60)
		types = uleb(types, uint64(f.Params))
		for range f.Params {
			types = append(types, 0x7f)
		}
		types = append(types, 1, f.Result)
		fsec = uleb(fsec, uint64(i))
		exports = appendName(exports, f.Name)
		exports = append(exports, 0x00)
		exports = uleb(exports, uint64(i))
		body := []byte{0x00} // no locals
		if f.Result == 0x7e {
			body = append(body, 0x42)
		} else {
			body = append(body, 0x41)
		}
		body = sleb(body, f.Returns)
		body = append(body, 0x0b)
		code = uleb(code, uint64(len(body)))
		code = append(code, body...)
	}
	exports = appendName(exports, "memory")
	exports = append(exports, 0x02, 0x00)
	var dsec []byte
	dsec = uleb(dsec, uint64(len(data)))
	for addr, b := range data {
		dsec = append(dsec, 0x00, 0x41)
		dsec = sleb(dsec, int64(addr))
		dsec = append(dsec, 0x0b)
		dsec = uleb(dsec, uint64(len(b)))
		dsec = append(dsec, b...)
	}
	mod := []byte{0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00}
	mod = section(mod, 1, types)
	mod = section(mod, 3, fsec)
	mod = section(mod, 5, []byte{0x01, 0x00, 0x02}) // one memory, min 2 pages
	mod = section(mod, 7, exports)
	mod = section(mod, 10, code)
	mod = section(mod, 11, dsec)
	path := filepath.Join(t.TempDir(), name+".wasm")
	if err := os.WriteFile(path, mod, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func section(mod []byte, id byte, body []byte) []byte {
	mod = append(mod, id)
	mod = uleb(mod, uint64(len(body)))
	return append(mod, body...)
}

func appendName(b []byte, s string) []byte {
	b = uleb(b, uint64(len(s)))
	return append(b, s...)
}

func uleb(b []byte, v uint64) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v != 0 {
			b = append(b, c|0x80)
			continue
		}
		return append(b, c)
	}
}

func sleb(b []byte, v int64) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if (v == 0 && c&0x40 == 0) || (v == -1 && c&0x40 != 0) {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

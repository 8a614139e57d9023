package plugin

import (
	"encoding/binary"
	"errors"
)

// A record is the ABI's exchange format: a sequence of fields, each a
// little-endian u16 tag, a little-endian u32 length and that many bytes.
// Integers are 8-byte little-endian two's complement, booleans one byte.

const fieldHeader = 6

var errBadRecord = errors.New("malformed output record")

// readField returns the first field of rec and the rest of rec.
func readField(rec []byte) (tag uint16, val, rest []byte, err error) {
	if len(rec) < fieldHeader {
		return 0, nil, nil, errBadRecord
	}
	tag = binary.LittleEndian.Uint16(rec)
	n := binary.LittleEndian.Uint32(rec[2:])
	if uint64(n) > uint64(len(rec)-fieldHeader) {
		return 0, nil, nil, errBadRecord
	}
	end := fieldHeader + int(n)
	return tag, rec[fieldHeader:end], rec[end:], nil
}

func asInt(v []byte) int64 {
	if len(v) != 8 {
		return 0
	}
	return int64(binary.LittleEndian.Uint64(v))
}

func asBool(v []byte) bool { return len(v) == 1 && v[0] != 0 }

// recordWriter appends fields to a reusable buffer.
type recordWriter struct{ b, idx []byte }

func (w *recordWriter) reset() { w.b = w.b[:0] }

func (w *recordWriter) bytes(tag uint16, v []byte) {
	w.b = binary.LittleEndian.AppendUint16(w.b, tag)
	w.b = binary.LittleEndian.AppendUint32(w.b, uint32(len(v)))
	w.b = append(w.b, v...)
}

func (w *recordWriter) str(tag uint16, v string) {
	w.b = binary.LittleEndian.AppendUint16(w.b, tag)
	w.b = binary.LittleEndian.AppendUint32(w.b, uint32(len(v)))
	w.b = append(w.b, v...)
}

func (w *recordWriter) int(tag uint16, v int64) {
	w.b = binary.LittleEndian.AppendUint16(w.b, tag)
	w.b = binary.LittleEndian.AppendUint32(w.b, 8)
	w.b = binary.LittleEndian.AppendUint64(w.b, uint64(v))
}

func (w *recordWriter) bool(tag uint16, v bool) {
	w.b = binary.LittleEndian.AppendUint16(w.b, tag)
	w.b = binary.LittleEndian.AppendUint32(w.b, 1)
	if v {
		w.b = append(w.b, 1)
	} else {
		w.b = append(w.b, 0)
	}
}

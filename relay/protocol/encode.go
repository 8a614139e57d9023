package protocol

import (
	"strconv"
)

// The Append functions encode server frames with the reference server's key
// order (see the protocol page), appending to dst and returning the extended
// buffer. Integers are always JSON integers.

// AppendError appends an error frame:
// {"channel":N,"success":false,"error":"...","errorcode":"..."}.
// channel is 0 unless the request named a valid channel and the protocol
// reports its number for that error.
func AppendError(dst []byte, channel int64, code Code, text string) []byte {
	if text == "" {
		text = code.Text()
	}
	dst = append(dst, `{"channel":`...)
	dst = strconv.AppendInt(dst, channel, 10)
	dst = append(dst, `,"success":false,"error":`...)
	dst = AppendString(dst, text)
	dst = append(dst, `,"errorcode":`...)
	dst = AppendString(dst, string(code))
	return append(dst, '}')
}

// AppendGranted appends the GRANTED answer to a GRANT.
func AppendGranted(dst []byte, token, name, protocol string) []byte {
	dst = append(dst, `{"channel":0,"success":true,"cmd":"GRANTED","token":`...)
	dst = AppendString(dst, token)
	dst = append(dst, `,"channelname":`...)
	dst = AppendString(dst, name)
	dst = append(dst, `,"protocol":`...)
	dst = AppendString(dst, protocol)
	return append(dst, '}')
}

// AppendJoined appends the JOINED notification other members get.
func AppendJoined(dst []byte, channel, id int64, info MemberInfo) []byte {
	dst = appendHead(dst, channel, CmdJoined, id)
	dst = append(dst, `,"info":`...)
	dst = AppendMemberInfo(dst, info)
	return append(dst, '}')
}

// AppendJoinedSelf appends the joiner's own JOINED: the notification plus
// channelname, protocol and the clients it may see.
func AppendJoinedSelf(dst []byte, channel, id int64, info MemberInfo, name, protocol string, clients []Member) []byte {
	dst = appendHead(dst, channel, CmdJoined, id)
	dst = append(dst, `,"info":`...)
	dst = AppendMemberInfo(dst, info)
	dst = append(dst, `,"channelname":`...)
	dst = AppendString(dst, name)
	dst = append(dst, `,"protocol":`...)
	dst = AppendString(dst, protocol)
	dst = append(dst, `,"clients":{`...)
	for i, m := range clients {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, '"')
		dst = strconv.AppendInt(dst, m.ID, 10)
		dst = append(dst, `":`...)
		dst = AppendMemberInfo(dst, m.Info)
	}
	return append(dst, "}}"...)
}

// AppendSetExtra appends the SET_EXTRA notification for member id.
func AppendSetExtra(dst []byte, channel, id int64, extra []byte) []byte {
	dst = appendHead(dst, channel, CmdSetExtra, id)
	dst = append(dst, `,"extra":`...)
	dst = appendExtra(dst, extra)
	return append(dst, '}')
}

// AppendLeft appends the LEFT notification for member id.
func AppendLeft(dst []byte, channel, id int64) []byte {
	dst = appendHead(dst, channel, CmdLeft, id)
	return append(dst, '}')
}

// AppendMessage appends an application message as delivered: channel,
// success, from and cmd first, then every other field of req in request
// order, without `to`. The server's channel, success, from and cmd replace
// request fields of the same names, so a client cannot forge them.
func AppendMessage(dst []byte, channel, from int64, req *Request) []byte {
	return AppendMessageTail(AppendMessageHead(dst, channel, from), req)
}

// AppendMessageHead appends the part of a delivered message that names its
// channel and sender: `{"channel":N,"success":true,"from":F,`. The rest,
// from `"cmd":` on, is the same on every instance of a cluster, which each
// put their own channel number in front of.
func AppendMessageHead(dst []byte, channel, from int64) []byte {
	dst = append(dst, `{"channel":`...)
	dst = strconv.AppendInt(dst, channel, 10)
	dst = append(dst, `,"success":true,"from":`...)
	dst = strconv.AppendInt(dst, from, 10)
	return append(dst, ',')
}

// AppendMessageTail appends a delivered message after its head: cmd, then
// every other field of req in request order, without `to`.
func AppendMessageTail(dst []byte, req *Request) []byte {
	dst = append(dst, `"cmd":`...)
	dst = AppendString(dst, req.Cmd)
	if start := len(dst); len(req.Fields) > 0 {
		if dst = AppendFields(append(dst, ','), req); len(dst) == start+1 {
			dst = dst[:start] // only fields the relay owns
		}
	}
	return append(dst, '}')
}

// AppendFields appends the request's own fields as the members of a JSON
// object without braces (`"a":1,"b":2`), in order and as sent, leaving out
// those the relay sets on a delivered message (channel, success, from, cmd,
// to).
func AppendFields(dst []byte, req *Request) []byte {
	first := true
	for _, f := range req.Fields {
		switch f.Key {
		case "channel", "success", "from", "cmd", "to":
			continue
		}
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = append(dst, f.RawKey...)
		dst = append(dst, ':')
		dst = append(dst, f.Value...)
	}
	return dst
}

// AppendMemberInfo appends {"auth":..,"mode":..,"extra":..}.
func AppendMemberInfo(dst []byte, info MemberInfo) []byte {
	if info.Auth {
		dst = append(dst, `{"auth":true,"mode":`...)
	} else {
		dst = append(dst, `{"auth":false,"mode":`...)
	}
	dst = strconv.AppendInt(dst, int64(info.Mode), 10)
	dst = append(dst, `,"extra":`...)
	dst = appendExtra(dst, info.Extra)
	return append(dst, '}')
}

func appendExtra(dst, extra []byte) []byte {
	if extra == nil {
		return append(dst, "false"...)
	}
	return append(dst, extra...)
}

func appendHead(dst []byte, channel int64, cmd string, id int64) []byte {
	dst = append(dst, `{"channel":`...)
	dst = strconv.AppendInt(dst, channel, 10)
	dst = append(dst, `,"success":true,"cmd":"`...)
	dst = append(dst, cmd...)
	dst = append(dst, `","from":0,"id":`...)
	return strconv.AppendInt(dst, id, 10)
}

const hexDigits = "0123456789abcdef"

// AppendString appends s as a JSON string. It escapes only what JSON
// requires (quote, backslash, control characters), so s must be valid
// UTF-8, as every string the relay gets from a decoded request is.
func AppendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		start = i + 1
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

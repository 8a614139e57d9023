package sdk

import "time"

// A plugin is one wasm module: its handlers are registered from init
// functions (main does not run in a -buildmode=c-shared module), so the SDK
// keeps them in package variables. The host never calls a module from two
// goroutines at once.
var (
	joinHandler      func(*Join) (Verdict, error)
	filterHandler    func(*Message) (Verdict, error)
	tokenHandler     func(*TokenRequest) (Verdict, error)
	configureHandler func(config []byte) error
	pluginConfig     []byte

	scratchMessage Message
	output         recordWriter
)

// HandleAuthorizeJoin registers f as the plugin's authorize-join hook. Call
// it from an init function. f returning an error is a plugin failure: the
// relay applies the hook's failure policy and logs the error.
func HandleAuthorizeJoin(f func(*Join) (Verdict, error)) { joinHandler = f }

// HandleFilterMessage registers f as the plugin's filter-message hook. The
// *Message and everything in it are reused after f returns; copy what you
// keep.
func HandleFilterMessage(f func(*Message) (Verdict, error)) { filterHandler = f }

// HandleTokenCreate registers f as the plugin's on-token-create hook.
func HandleTokenCreate(f func(*TokenRequest) (Verdict, error)) { tokenHandler = f }

// HandleConfigure registers f to receive the plugin's configuration string
// once per instance, before any hook runs. An error stops the relay's
// start-up with the error's text, so validate the configuration here.
func HandleConfigure(f func(config []byte) error) { configureHandler = f }

// Config returns the plugin's configuration string (RELAY_PLUGIN_CONFIG_<NAME>),
// empty when none was given.
func Config() []byte { return pluginConfig }

func hooksMask() int32 {
	var m int32
	if joinHandler != nil {
		m |= hookBitAuthorizeJoin
	}
	if filterHandler != nil {
		m |= hookBitFilterMessage
	}
	if tokenHandler != nil {
		m |= hookBitOnTokenCreate
	}
	return m
}

type hookID uint8

const (
	hookConfigure hookID = iota
	hookJoin
	hookFilter
	hookToken
)

// dispatch decodes in, runs the registered handler and encodes its answer
// into output. A panic becomes verdictPanic with the panic's text.
func dispatch(h hookID, in []byte) (verdict uint8) {
	output.reset()
	defer func() {
		if r := recover(); r != nil {
			output.reset()
			output.str(tagMessage, "panic: "+panicText(r))
			verdict = verdictPanic
		}
	}()
	var v Verdict
	var err error
	switch h {
	case hookConfigure:
		pluginConfig = append([]byte(nil), in...)
		if configureHandler != nil {
			err = configureHandler(pluginConfig)
		}
	case hookJoin:
		if joinHandler == nil {
			return verdictContinue
		}
		var j Join
		if err = decodeJoin(in, &j); err == nil {
			v, err = joinHandler(&j)
		}
	case hookFilter:
		if filterHandler == nil {
			return verdictContinue
		}
		m := &scratchMessage
		last := *m
		*m = Message{}
		if err = decodeMessage(in, m, &last); err == nil {
			v, err = filterHandler(m)
		}
	case hookToken:
		if tokenHandler == nil {
			return verdictContinue
		}
		var t TokenRequest
		if err = decodeToken(in, &t); err == nil {
			v, err = tokenHandler(&t)
		}
	}
	if err != nil {
		output.reset()
		output.str(tagMessage, err.Error())
		return verdictError
	}
	encodeVerdict(&output, v)
	return v.kind
}

func panicText(r any) string {
	switch x := r.(type) {
	case error:
		return x.Error()
	case string:
		return x
	case interface{ String() string }:
		return x.String()
	}
	return "non-string panic value"
}

func encodeVerdict(w *recordWriter, v Verdict) {
	if v.kind == verdictDeny {
		w.str(tagErrorCode, v.code)
		w.str(tagMessage, v.msg)
	}
	if v.set&setAuthority != 0 {
		w.bool(tagAuthority, v.authority)
	}
	if v.set&setMode != 0 {
		w.int(tagMode, int64(v.mode))
	}
	if v.set&setExtra != 0 {
		w.bytes(tagExtra, v.extra)
	}
	if v.set&setBody != 0 {
		w.bytes(tagBody, v.body)
	}
	if v.set&setClientMode != 0 {
		w.int(tagClientMode, int64(v.clientMode))
	}
	if v.set&setLifetime != 0 {
		w.int(tagLifetime, v.lifetime.Milliseconds())
	}
}

func decodeJoin(rec []byte, j *Join) error {
	for len(rec) > 0 {
		tag, v, rest, err := readField(rec)
		if err != nil {
			return err
		}
		rec = rest
		switch tag {
		case tagClientID:
			j.Client.ID = asInt(v)
		case tagClientAddr:
			j.Client.Addr = string(v)
		case tagClientOrigin:
			j.Client.Origin = string(v)
		case tagToken:
			j.Token = string(v)
		case tagChannelName:
			j.Channel.Name = string(v)
		case tagChannelProtocol:
			j.Channel.Protocol = string(v)
		case tagChannelID:
			j.Channel.ID = asInt(v)
		case tagNow:
			j.Now = time.Unix(0, asInt(v))
		case tagAllowed:
			j.Allowed = asBool(v)
		case tagAuthority:
			j.Authority = asBool(v)
		case tagMode:
			j.Mode = int(asInt(v))
		case tagExtra:
			j.Extra = append([]byte(nil), v...)
		case tagErrorCode:
			j.ErrorCode = string(v)
		case tagMessage:
			j.Error = string(v)
		}
	}
	return nil
}

// intern returns b as a string, reusing *prev (the previous call's value)
// when equal: channel names and commands repeat, and allocating in a guest
// is not free.
func intern(prev *string, b []byte) string {
	if string(b) == *prev {
		return *prev
	}
	return string(b)
}

func decodeMessage(rec []byte, m *Message, last *Message) error {
	for len(rec) > 0 {
		tag, v, rest, err := readField(rec)
		if err != nil {
			return err
		}
		rec = rest
		switch tag {
		case tagClientID:
			m.Sender.ID = asInt(v)
		case tagClientAddr:
			m.Sender.Addr = intern(&last.Sender.Addr, v)
		case tagClientOrigin:
			m.Sender.Origin = intern(&last.Sender.Origin, v)
		case tagChannelName:
			m.Channel.Name = intern(&last.Channel.Name, v)
		case tagChannelProtocol:
			m.Channel.Protocol = intern(&last.Channel.Protocol, v)
		case tagChannelID:
			m.Channel.ID = asInt(v)
		case tagNow:
			m.Now = time.Unix(0, asInt(v))
		case tagAuthority:
			m.Authority = asBool(v)
		case tagMode:
			m.Mode = int(asInt(v))
		case tagExtra:
			m.Extra = v
		case tagTo:
			m.To = asInt(v)
		case tagCmd:
			m.Cmd = intern(&last.Cmd, v)
		case tagBody:
			m.Body.raw = v
		case tagBodyIndex:
			m.Body.index = v
		}
	}
	return nil
}

func decodeToken(rec []byte, t *TokenRequest) error {
	for len(rec) > 0 {
		tag, v, rest, err := readField(rec)
		if err != nil {
			return err
		}
		rec = rest
		switch tag {
		case tagClientID:
			t.Requester.ID = asInt(v)
		case tagClientAddr:
			t.Requester.Addr = string(v)
		case tagClientOrigin:
			t.Requester.Origin = string(v)
		case tagChannelName:
			t.Channel.Name = string(v)
		case tagChannelProtocol:
			t.Channel.Protocol = string(v)
		case tagNow:
			t.Now = time.Unix(0, asInt(v))
		case tagClientMode:
			t.ClientMode = int(asInt(v))
		case tagExtra:
			t.Extra = append([]byte(nil), v...)
		case tagMakeAuth:
			t.MakeAuth = asBool(v)
		case tagLifetime:
			t.Lifetime = time.Duration(asInt(v)) * time.Millisecond
		case tagAllowed:
			t.Allowed = asBool(v)
		case tagErrorCode:
			t.ErrorCode = string(v)
		case tagMessage:
			t.Error = string(v)
		}
	}
	return nil
}

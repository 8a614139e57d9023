package protocol

// Code is a stable error code sent as `errorcode` in an error frame. Codes are
// API; the human text that goes with them is not.
type Code string

// The DRC error codes, in the order the protocol checks them.
const (
	CodeInvalidData            Code = "invalid_data"
	CodeMissingInvalidCmd      Code = "missing_invalid_cmd"
	CodeMissingInvalidChannel  Code = "missing_invalid_channel"
	CodeMissingInvalidProtocol Code = "missing_invalid_protocol"
	CodeMissingInvalidMode     Code = "missing_invalid_clientmode"
	CodeMissingInvalidExtra    Code = "missing_invalid_extra"
	CodeAccessDenied           Code = "access_denied"
	CodeMaxChannelLimitReached Code = "max_channel_limit_reached"
	CodeMissingChannel         Code = "missing_channel"
	CodeInvalidChannel         Code = "invalid_channel"
	CodeInvalidID              Code = "invalid_id"
	CodeMissingTo              Code = "missing_to"
	CodeInvalidTo              Code = "invalid_to"
	CodeUnavailable            Code = "unavailable"         // relay: the server cannot serve the request right now (draining, a store failed)
	CodePluginError            Code = "plugin_error"        // relay: a plugin failed and its hook's failure policy is closed
	CodePluginTimeout          Code = "plugin_timeout"      // relay: a plugin overran its deadline and its hook's failure policy is closed
	CodePluginBadOutput        Code = "plugin_bad_output"   // relay: a plugin's answer broke the plugin ABI and its hook's failure policy is closed
	CodePluginDenied           Code = "plugin_denied"       // relay: a plugin refused without naming its own code (plugins may send their own codes)
	CodeTokenLimitReached      Code = "token_limit_reached" // relay: the grant token store is full (RELAY_TOKEN_MAX_COUNT, RELAY_TOKEN_MAX_BYTES)
	CodeInternal               Code = "internal_error"      // relay: a bug; logged with details
	CodeRateLimited            Code = "rate_limited"        // relay: the connection sent past RELAY_CLIENT_RATE; the request was dropped
	CodeExtraTooLarge          Code = "extra_too_large"     // relay: an extra over RELAY_MAX_EXTRA_BYTES (GRANT, SET_EXTRA, the HTTP API)
	CodeChannelFull            Code = "channel_full"        // relay: JOIN of a channel holding RELAY_MAX_CHANNEL_MEMBERS members
	CodeTokenTooLarge          Code = "token_too_large"     // relay: a JOIN token over RELAY_PLUGIN_MAX_TOKEN_BYTES, refused before authorize-join plugins run
)

// Text returns the human-readable text sent with c.
func (c Code) Text() string {
	switch c {
	case CodeInvalidData:
		return "Invalid data: the message is not a JSON object."
	case CodeMissingInvalidCmd:
		return "Missing or invalid 'cmd'."
	case CodeMissingInvalidChannel:
		return "Missing or invalid 'channel': a string of 1 to 256 bytes."
	case CodeMissingInvalidProtocol:
		return "Missing or invalid 'protocol': a string of 1 to 64 bytes."
	case CodeMissingInvalidMode:
		return "Missing or invalid 'clientmode': 0, 1 or 2."
	case CodeMissingInvalidExtra:
		return "Missing or invalid 'extra': an object."
	case CodeAccessDenied:
		return "Access denied."
	case CodeMaxChannelLimitReached:
		return "Maximum channel limit reached."
	case CodeMissingChannel:
		return "Missing 'channel'."
	case CodeInvalidChannel:
		return "Invalid 'channel': not a channel this client is a member of."
	case CodeInvalidID:
		return "Invalid 'id': not a member of the channel."
	case CodeMissingTo:
		return "Missing 'to'."
	case CodeInvalidTo:
		return "Invalid 'to': not a member this client may send to."
	case CodeUnavailable:
		return "The relay cannot serve this request right now; try again."
	case CodePluginError:
		return "A plugin failed while handling the request."
	case CodePluginTimeout:
		return "A plugin took too long to handle the request."
	case CodePluginBadOutput:
		return "A plugin returned an invalid answer."
	case CodePluginDenied:
		return "Refused by a plugin."
	case CodeRateLimited:
		return "Too many messages: this one was dropped; slow down or be disconnected."
	case CodeTokenLimitReached:
		return "The relay holds as many grant tokens as it may; try again when some have been used or expired."
	case CodeExtraTooLarge:
		return "The 'extra' is larger than this relay accepts."
	case CodeChannelFull:
		return "The channel has as many members as this relay allows."
	case CodeTokenTooLarge:
		return "The 'token' is longer than this relay accepts."
	}
	return "Internal error."
}

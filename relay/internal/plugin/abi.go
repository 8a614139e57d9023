package plugin

// The names and numbers of ABI version 1, mirrored by the SDK in
// plugin-sdk/abi.go. plugin-sdk/ABI.md is the specification; a host test
// checks that both files agree.

const (
	abiVersion = 1

	hostModule = "relay"
	importLog  = "log"
	importNow  = "now"

	importResource        = "resource"
	importResourceRefresh = "resource_refresh"

	// Results of relay.resource and relay.resource_refresh other than content.
	resourceNotAllowed   = -1
	resourceUnavailable  = -2
	resourceBadArgs      = -3
	resourceRefreshNow   = 0
	resourceRefreshLater = 1

	importVerifySignature = "verify_signature"

	// Results of relay.verify_signature.
	verifyValid       = 1
	verifyInvalid     = 0
	verifyUnsupported = -1
	verifyBadKey      = -2
	verifyBadArgs     = -3

	exportABIVersion    = "relay_abi_version"
	exportBuffer        = "relay_buffer"
	exportHooks         = "relay_hooks"
	exportConfigure     = "relay_configure"
	exportAuthorizeJoin = "relay_authorize_join"
	exportFilterMessage = "relay_filter_message"
	exportOnTokenCreate = "relay_on_token_create"

	hookBitAuthorizeJoin = 1 << 0
	hookBitFilterMessage = 1 << 1
	hookBitOnTokenCreate = 1 << 2

	verdictContinue = 0
	verdictAllow    = 1
	verdictDeny     = 2
	verdictDrop     = 3
	verdictError    = 4
	verdictPanic    = 5

	maxOutputLen = 1<<24 - 1

	tagClientID        = 1
	tagClientAddr      = 2
	tagClientOrigin    = 3
	tagToken           = 4
	tagChannelName     = 5
	tagChannelProtocol = 6
	tagChannelID       = 7
	tagNow             = 8
	tagAllowed         = 16
	tagAuthority       = 17
	tagMode            = 18
	tagExtra           = 19
	tagErrorCode       = 20
	tagMessage         = 21
	tagTo              = 32
	tagCmd             = 33
	tagBody            = 34
	tagBodyIndex       = 35
	tagClientMode      = 48
	tagMakeAuth        = 49
	tagLifetime        = 50

	logDebug = 0
	logInfo  = 1
	logWarn  = 2
	logError = 3
)

package plugin

import "errors"

// Hook identifies a hook point. All hooks are described by hookTable; adding
// a hook takes a constant here, a table entry, an input encoder and a
// verdict decoder in host.go, a handler in the SDK and a test case.
type Hook int

// The hook points, in table order.
const (
	// AuthorizeJoin runs on every JOIN after the relay's built-in decision.
	AuthorizeJoin Hook = iota
	// FilterMessage runs once per application message before delivery.
	FilterMessage
	// OnTokenCreate runs on every GRANT.
	OnTokenCreate

	numHooks
)

// hookSpec describes one hook point.
type hookSpec struct {
	name   string // user-facing name, used in logs and docs
	export string // the guest export the host calls
	bit    int32  // the hook's bit in relay_hooks
	// verdicts lists which verdicts the hook accepts (besides error/panic).
	verdicts uint8
}

func bits(vs ...uint8) uint8 {
	var m uint8
	for _, v := range vs {
		m |= 1 << v
	}
	return m
}

// hookTable is read-only.
var hookTable = [numHooks]hookSpec{
	AuthorizeJoin: {
		name:     "authorize-join",
		export:   exportAuthorizeJoin,
		bit:      hookBitAuthorizeJoin,
		verdicts: bits(verdictContinue, verdictAllow, verdictDeny),
	},
	FilterMessage: {
		name:     "filter-message",
		export:   exportFilterMessage,
		bit:      hookBitFilterMessage,
		verdicts: bits(verdictContinue, verdictAllow, verdictDeny, verdictDrop),
	},
	OnTokenCreate: {
		name:     "on-token-create",
		export:   exportOnTokenCreate,
		bit:      hookBitOnTokenCreate,
		verdicts: bits(verdictContinue, verdictAllow, verdictDeny),
	},
}

// String returns the hook's name, e.g. "filter-message".
func (h Hook) String() string {
	if h < 0 || h >= numHooks {
		return "unknown-hook"
	}
	return hookTable[h].name
}

// Hooks returns every hook point in table order.
func Hooks() []Hook {
	hs := make([]Hook, numHooks)
	for i := range hs {
		hs[i] = Hook(i)
	}
	return hs
}

// Outcomes of one plugin call, as reported to Config.Observe.
const (
	OutcomeContinue  = "continue"
	OutcomeAllow     = "allow"
	OutcomeDeny      = "deny"
	OutcomeDrop      = "drop"
	OutcomeError     = "error"      // the plugin failed: error, panic, trap
	OutcomeTimeout   = "timeout"    // the call overran its deadline
	OutcomeBadOutput = "bad_output" // the answer broke the ABI
)

// outcome names the result of a call for Config.Observe.
func outcome(verdict uint8, err error) string {
	switch {
	case errors.Is(err, ErrTimeout):
		return OutcomeTimeout
	case errors.Is(err, ErrBadOutput):
		return OutcomeBadOutput
	case err != nil:
		return OutcomeError
	}
	switch verdict {
	case verdictAllow:
		return OutcomeAllow
	case verdictDeny:
		return OutcomeDeny
	case verdictDrop:
		return OutcomeDrop
	}
	return OutcomeContinue
}

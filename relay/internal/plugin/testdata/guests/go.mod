module relaytest/guests

go 1.25.0

require github.com/relay-project/relay/plugin-sdk v0.0.0

replace github.com/relay-project/relay/plugin-sdk => ../../../../../plugin-sdk

module github.com/relay-project/relay/plugin-sdk

go 1.25.0

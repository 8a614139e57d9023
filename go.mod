module github.com/relay-project/relay

go 1.26.0

require (
	github.com/BurntSushi/toml v1.6.0
	github.com/caarlos0/env/v11 v11.4.2
	github.com/coder/websocket v1.8.15
	go.yaml.in/yaml/v3 v3.0.6
)

module github.com/keel-run/keel

go 1.26.0

// Why each direct dependency is here (see also the README).
require (
	github.com/aws/aws-sdk-go-v2 v1.47.7 // SigV4 signer, credentials, retry modes (bench contenders)
	github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream v1.7.26 // the event-stream codec (emulator frames, stream re-encoding)
	github.com/aws/aws-sdk-go-v2/config v1.33.15 // the AWS configuration chain for the CLI
	github.com/aws/aws-sdk-go-v2/credentials v1.20.15 // static credentials (emulator, tests)
	github.com/aws/aws-sdk-go-v2/feature/ec2/imds v1.20.7 // to switch IMDS off when talking to an emulator
	github.com/aws/aws-sdk-go-v2/service/bedrock v1.63.0 // the control-plane client the emulator is checked against
	github.com/aws/aws-sdk-go-v2/service/bedrockruntime v1.63.11 // the official client keel plugs into and is tested with
	github.com/aws/smithy-go v1.28.8 // the SDK middleware stack and error types keel hooks into
	github.com/prometheus/client_golang v1.25.0 // metrics
	github.com/rogpeppe/go-internal v1.14.1 // tests: testscript runs the keel command and every command the docs show (cmd/keel/testdata/script), as the Go project tests its own commands
	go.uber.org/goleak v1.3.0 // tests: no goroutine or connection leaks
	go.yaml.in/yaml/v3 v3.0.6 // configuration and scenario files (strict decoding, line numbers)
	modernc.org/sqlite v1.61.1 // dead-letter queue and batch checkpoints: maintained pure-Go SQLite, no cgo
)

require (
	github.com/aws/aws-sdk-go-v2/internal/configsources v1.5.10 // indirect
	github.com/aws/aws-sdk-go-v2/internal/endpoints/v2 v2.8.10 // indirect
	github.com/aws/aws-sdk-go-v2/internal/v4a v1.5.10 // indirect
	github.com/aws/aws-sdk-go-v2/service/internal/accept-encoding v1.13.24 // indirect
	github.com/aws/aws-sdk-go-v2/service/internal/presigned-url v1.14.10 // indirect
	github.com/aws/aws-sdk-go-v2/service/signin v1.12.3 // indirect
	github.com/aws/aws-sdk-go-v2/service/sso v1.39.3 // indirect
	github.com/aws/aws-sdk-go-v2/service/ssooidc v1.44.3 // indirect
	github.com/aws/aws-sdk-go-v2/service/sts v1.51.8 // indirect
	github.com/beorn7/perks v1.0.1 // indirect
	github.com/cespare/xxhash/v2 v2.3.0 // indirect
	github.com/dustin/go-humanize v1.1.0 // indirect
	github.com/google/uuid v1.6.0 // indirect
	github.com/kylelemons/godebug v1.1.0 // indirect
	github.com/mattn/go-isatty v0.0.24 // indirect
	github.com/munnerz/goautoneg v0.0.0-20191010083416-a7dc8b61c822 // indirect
	github.com/ncruces/go-strftime v1.1.0 // indirect
	github.com/prometheus/client_model v0.6.3 // indirect
	github.com/prometheus/common v0.72.0 // indirect
	github.com/prometheus/procfs v0.22.0 // indirect
	github.com/remyoudompheng/bigfft v0.0.0-20230129092748-24d4a6f8daec // indirect
	golang.org/x/sys v0.49.0 // indirect
	golang.org/x/tools v0.52.0 // indirect
	google.golang.org/protobuf v1.36.12 // indirect
	modernc.org/libc v1.79.0 // indirect
	modernc.org/mathutil v1.7.1 // indirect
	modernc.org/memory v1.12.1 // indirect
)

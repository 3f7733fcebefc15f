module github.com/keel-run/keel

go 1.26.0

// Why each direct dependency is here (see also the README).
require (
	github.com/anthropics/anthropic-sdk-go/v2 v2.17.0 // tests: the official Anthropic Go SDK's Bedrock option (anthropic_version 2026-10-21) is checked against the emulator
	github.com/aws/aws-sdk-go-v2 v1.47.7 // SigV4 signer, credentials, retry modes (bench contenders)
	github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream v1.7.26 // the event-stream codec (emulator frames, stream re-encoding)
	github.com/aws/aws-sdk-go-v2/config v1.33.15 // the AWS configuration chain for the CLI
	github.com/aws/aws-sdk-go-v2/credentials v1.20.15 // static credentials (emulator, tests)
	github.com/aws/aws-sdk-go-v2/feature/ec2/imds v1.20.7 // to switch IMDS off when talking to an emulator
	github.com/aws/aws-sdk-go-v2/service/bedrock v1.63.0 // the control-plane client the emulator is checked against
	github.com/aws/aws-sdk-go-v2/service/bedrockruntime v1.63.11 // the official client keel plugs into and is tested with
	github.com/aws/aws-sdk-go-v2/service/s3 v1.114.8 // keel jobs uploads batch-inference input and reads its output; the emulator's S3 and batch jobs are checked against it (the version built on the same SDK core)
	github.com/aws/aws-sdk-go-v2/service/servicequotas v1.43.10 // keel doctor and quota discovery read Bedrock's quotas (the version built on the same SDK core)
	github.com/aws/aws-sdk-go-v2/service/sts v1.51.8 // keel doctor asks GetCallerIdentity (already required by the credential chain)
	github.com/aws/smithy-go v1.28.8 // the SDK middleware stack and error types keel hooks into
	github.com/prometheus/client_golang v1.25.0 // metrics
	github.com/redis/go-redis/v9 v9.23.0 // shared state of replicas (quota buckets, breakers, budgets): the maintained Redis client, Lua scripts and TLS
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
	github.com/aws/aws-sdk-go-v2/service/internal/checksum v1.11.11 // indirect
	github.com/aws/aws-sdk-go-v2/service/internal/presigned-url v1.14.10 // indirect
	github.com/aws/aws-sdk-go-v2/service/internal/s3shared v1.20.10 // indirect
	github.com/aws/aws-sdk-go-v2/service/signin v1.12.3 // indirect
	github.com/aws/aws-sdk-go-v2/service/sso v1.39.3 // indirect
	github.com/aws/aws-sdk-go-v2/service/ssooidc v1.44.3 // indirect
	github.com/bahlo/generic-list-go v0.2.0 // indirect
	github.com/beorn7/perks v1.0.1 // indirect
	github.com/buger/jsonparser v1.1.2 // indirect
	github.com/cespare/xxhash/v2 v2.3.0 // indirect
	github.com/dustin/go-humanize v1.1.0 // indirect
	github.com/go-logr/logr v1.4.2 // indirect
	github.com/go-logr/stdr v1.2.2 // indirect
	github.com/google/uuid v1.6.0 // indirect
	github.com/invopop/jsonschema v0.14.0 // indirect
	github.com/kylelemons/godebug v1.1.0 // indirect
	github.com/mattn/go-isatty v0.0.24 // indirect
	github.com/munnerz/goautoneg v0.0.0-20191010083416-a7dc8b61c822 // indirect
	github.com/ncruces/go-strftime v1.1.0 // indirect
	github.com/pb33f/ordered-map/v2 v2.3.1 // indirect
	github.com/prometheus/client_model v0.6.3 // indirect
	github.com/prometheus/common v0.72.0 // indirect
	github.com/prometheus/procfs v0.22.0 // indirect
	github.com/remyoudompheng/bigfft v0.0.0-20230129092748-24d4a6f8daec // indirect
	github.com/standard-webhooks/standard-webhooks/libraries v0.0.1 // indirect
	github.com/tidwall/gjson v1.18.0 // indirect
	github.com/tidwall/match v1.1.1 // indirect
	github.com/tidwall/pretty v1.2.1 // indirect
	github.com/tidwall/sjson v1.2.5 // indirect
	go.opentelemetry.io/auto/sdk v1.1.0 // indirect
	go.opentelemetry.io/otel v1.33.0 // indirect
	go.opentelemetry.io/otel/metric v1.33.0 // indirect
	go.opentelemetry.io/otel/trace v1.33.0 // indirect
	go.uber.org/atomic v1.12.0 // indirect
	go.yaml.in/yaml/v4 v4.0.0-rc.2 // indirect
	golang.org/x/sync v0.24.0 // indirect
	golang.org/x/sys v0.49.0 // indirect
	golang.org/x/tools v0.52.0 // indirect
	google.golang.org/protobuf v1.36.12 // indirect
	modernc.org/libc v1.79.0 // indirect
	modernc.org/mathutil v1.7.1 // indirect
	modernc.org/memory v1.12.1 // indirect
)

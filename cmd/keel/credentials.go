package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials/ec2rolecreds"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/aws/smithy-go/logging"

	"github.com/keel-run/keel/internal/catalog"
	"github.com/keel-run/keel/internal/engine"
)

// credentialsTimeout bounds the search for credentials before the first
// call. Every source answers well within it when it works (the instance
// metadata service in milliseconds, an STS or SSO exchange in under a
// second, a credential_process helper that asks a vault in a few); past it
// the chain is broken, not slow, and waiting longer only delays the same
// CredentialsUnavailable.
const credentialsTimeout = 10 * time.Second

// imdsAttempts is how many times the instance metadata service is asked.
// One, as the AWS CLI does (metadata_service_num_attempts): on an instance
// it answers in milliseconds, and off one, where it is the last source the
// chain tries, the SDK's three attempts only add 4 s to a refused
// connection before the same answer.
const imdsAttempts = 1

// loadAWSConfig is config.LoadDefaultConfig with the instance metadata
// service asked imdsAttempts times. The metadata client is built from a
// first load, so it keeps what the environment and profile say about it
// (AWS_EC2_METADATA_SERVICE_ENDPOINT, AWS_EC2_METADATA_DISABLED, ...).
// Loading reads files only; nothing is sent until credentials are asked for.
func loadAWSConfig(ctx context.Context, opts ...func(*awsconfig.LoadOptions) error) (aws.Config, error) {
	first, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return first, err
	}
	metadata := imds.NewFromConfig(first, func(o *imds.Options) {
		o.Retryer = retry.AddWithMaxAttempts(retry.NewStandard(), imdsAttempts)
	})
	opts = append(opts[:len(opts):len(opts)], awsconfig.WithEC2RoleCredentialOptions(func(o *ec2rolecreds.Options) { o.Client = metadata }))
	return awsconfig.LoadDefaultConfig(ctx, opts...)
}

// sdkLogger routes the AWS SDK's log lines (the metadata client's
// "falling back to IMDSv1", say) to keel's logger at debug level, warnings
// at warn, or drops them when there is none: printed to stderr as they
// are, they read as the cause of whatever keel reports next.
func sdkLogger(l *slog.Logger) logging.Logger {
	if l == nil {
		return logging.Nop{}
	}
	return logging.LoggerFunc(func(c logging.Classification, format string, v ...any) {
		level := slog.LevelDebug
		if c == logging.Warn {
			level = slog.LevelWarn
		}
		l.Log(context.Background(), level, fmt.Sprintf(format, v...), "source", "aws-sdk")
	})
}

// retrieveCredentials asks p for credentials once, within
// credentialsTimeout, so that a missing identity is known before any call.
// The credentials are cached by p for the calls that follow.
func retrieveCredentials(ctx context.Context, p aws.CredentialsProvider) error {
	if p == nil {
		return errors.New("no credential provider")
	}
	tctx, cancel := context.WithTimeout(ctx, credentialsTimeout)
	defer cancel()
	_, err := p.Retrieve(tctx)
	if err != nil && ctx.Err() == nil && tctx.Err() != nil {
		return fmt.Errorf("the credential chain found nothing within %v: %w", credentialsTimeout, err)
	}
	return err
}

// credentialsError is `keel converse` failing before any call because no
// credentials could be found: the catalog's CredentialsUnavailable with its
// fix. It unwraps to an *engine.Error, so keel.Details reads it as it reads
// a failed call.
type credentialsError struct {
	failure     *engine.Error
	explanation string
}

func (e *credentialsError) Error() string {
	return e.failure.Entry.Code + ": " + e.failure.Message + "\n\n" + e.explanation
}

func (e *credentialsError) Unwrap() error { return e.failure }

// credentialsUnavailable wraps a failed retrieval as a credentialsError.
func credentialsUnavailable(err error) error {
	entry := catalog.Must(catalog.CodeCredentialsUnavailable)
	var b strings.Builder
	writeExplanation(&b, entry)
	b.WriteString("To try keel without an AWS account, add --emulator.")
	return &credentialsError{
		failure:     &engine.Error{Entry: entry, Message: "no AWS credentials found: " + err.Error(), Err: err},
		explanation: b.String(),
	}
}

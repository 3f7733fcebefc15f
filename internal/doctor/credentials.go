package doctor

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/keel-run/keel/internal/catalog"
	"github.com/keel-run/keel/internal/classify"
)

// expirySoon is how close to expiry credentials draw a warning: a
// provider that refreshes (SSO, an assumed role, credential_process)
// renews them before then, but session credentials pasted into the
// environment cannot be renewed, and a quarter of an hour is about the
// length of a batch or a deploy.
const expirySoon = 15 * time.Minute

// BearerTokenEnv is the environment variable the AWS SDKs read a Bedrock
// API key from; when set, Bedrock Runtime calls carry it instead of a
// SigV4 signature.
const BearerTokenEnv = "AWS_BEARER_TOKEN_BEDROCK"

// credentials looks for credentials, within CredentialsTimeout, and
// reports where they came from and when they expire; then the Bedrock API
// key, which shadows them.
func (r *run) credentials(ctx context.Context) []Result {
	res := Result{Group: GroupCredentials, Check: "source"}
	if r.AWS.Credentials == nil {
		r.credsErr = errors.New("no credential provider")
	} else {
		cctx, cancel := context.WithTimeout(ctx, r.CredentialsTimeout)
		r.creds, r.credsErr = r.AWS.Credentials.Retrieve(cctx)
		if r.credsErr != nil && cctx.Err() != nil && ctx.Err() == nil {
			r.credsErr = fmt.Errorf("the credential chain found nothing within %v: %w", r.CredentialsTimeout, r.credsErr)
		}
		cancel()
	}
	now := r.Now()
	switch c := r.creds; {
	case r.credsErr != nil && r.Emulated:
		res.Status, res.Seen = Pass, "none found; the emulator takes any signature"
	case r.credsErr != nil && !r.onAWS():
		res.Status, res.Code = Warn, catalog.CodeCredentialsUnavailable
		res.Seen = "none found (" + r.credsErr.Error() + "); the endpoint may not need them"
		res.Fix = "if the endpoint checks signatures (keel serve with callers, keel emulate --access-key), set credentials its keys accept"
	case r.credsErr != nil:
		res = catalogResult(res, Fail, catalog.CodeCredentialsUnavailable, r.credsErr.Error())
	case c.CanExpire && !c.Expires.After(now):
		res = catalogResult(res, Fail, catalog.CodeExpiredToken,
			fmt.Sprintf("%s; they expired at %s", describeCreds(c), c.Expires.UTC().Format(time.RFC3339)))
	case c.CanExpire && c.Expires.Sub(now) < expirySoon:
		res.Status = Warn
		res.Seen = fmt.Sprintf("%s; they expire in %s", describeCreds(c), c.Expires.Sub(now).Round(time.Second))
		res.Fix = "renew them (aws sso login, a new session), or use a source that refreshes itself: an SSO profile, a role, credential_process"
	case c.CanExpire:
		res.Status, res.Seen = Pass, fmt.Sprintf("%s; they expire at %s (in %s)", describeCreds(c),
			c.Expires.UTC().Format(time.RFC3339), c.Expires.Sub(now).Round(time.Minute))
	default:
		res.Status, res.Seen = Pass, describeCreds(c)+"; they do not expire"
	}
	if r.Emulated && res.Status == Pass && r.credsErr == nil {
		res.Seen += " (the emulator takes any signature)"
	}
	return []Result{res, r.bearerToken(now)}
}

// describeCreds names the source and the key, without the secret.
func describeCreds(c aws.Credentials) string {
	src := c.Source
	if src == "" {
		src = "an unnamed provider"
	}
	kind := "long-term"
	if c.SessionToken != "" {
		kind = "temporary"
	}
	return fmt.Sprintf("%s key %s from %s", kind, maskKey(c.AccessKeyID), src)
}

// maskKey shows an access key id's first four and last four characters.
func maskKey(id string) string {
	if len(id) <= 8 {
		return strings.Repeat("*", len(id))
	}
	return id[:4] + "…" + id[len(id)-4:]
}

// bearerToken reports a Bedrock API key in the environment: it takes the
// place of the credentials above for every Bedrock Runtime call, and a
// short-term key is valid in one region until it expires.
func (r *run) bearerToken(now time.Time) Result {
	res := Result{Group: GroupCredentials, Check: "bearer-token"}
	tok := r.Getenv(BearerTokenEnv)
	if tok == "" {
		res.Status, res.Seen = Pass, BearerTokenEnv+" is not set: calls are signed with SigV4 by the credentials above"
		return res
	}
	shadow := BearerTokenEnv + " is set, so the SDK sends this Bedrock API key instead of a SigV4 signature by the credentials above"
	if r.endpoint.Scheme == "http" {
		res.Status, res.Code = Fail, catalog.CodeInvalidParameters
		res.Seen = shadow + "; the endpoint is plain HTTP, and the SDK refuses to send a bearer token without HTTPS"
		res.Fix = "unset " + BearerTokenEnv + " to talk to this endpoint"
		return res
	}
	k, err := parseBearerToken(tok)
	switch {
	case err != nil:
		res.Status = Warn
		res.Seen = shadow + "; it is not a key format doctor knows (" + err.Error() + ")"
		res.Fix = "unset " + BearerTokenEnv + " unless you mean to use it; a pasted key is often cut short"
	case k.longTerm:
		res.Status = Warn
		res.Seen = shadow + "; it is a long-term key (valid in every region until revoked)"
		res.Fix = "unset " + BearerTokenEnv + " to use the credentials above; AWS advises short-term keys for anything but exploration"
	case !k.expires.After(now):
		res.Status, res.Code = Fail, catalog.CodeExpiredToken
		res.Seen = fmt.Sprintf("%s; it is a short-term key for %s that expired at %s", shadow, k.region, k.expires.UTC().Format(time.RFC3339))
		res.Fix = "generate a new short-term key, or unset " + BearerTokenEnv + " to use the credentials above"
	case k.region != r.region:
		res.Status, res.Code = Fail, catalog.CodeUnrecognizedClient
		res.Seen = fmt.Sprintf("%s; it is a short-term key valid in %s only, not in %s", shadow, k.region, r.region)
		res.Fix = "generate the key in " + r.region + ", or unset " + BearerTokenEnv
	default:
		res.Status = Warn
		res.Seen = fmt.Sprintf("%s; it is a short-term key valid in %s until %s (in %s)", shadow, k.region,
			k.expires.UTC().Format(time.RFC3339), k.expires.Sub(now).Round(time.Minute))
		res.Fix = "nothing, if you mean to use it; unset " + BearerTokenEnv + " to sign with the credentials above"
	}
	return res
}

// bearerKey is what a Bedrock API key says about itself.
type bearerKey struct {
	longTerm bool
	region   string
	expires  time.Time
}

// Prefixes of Bedrock API keys: a short-term key is "bedrock-api-key-"
// and the base64 of a presigned URL (aws-bedrock-token-generator); a
// long-term key starts "ABSK".
const (
	shortTermPrefix = "bedrock-api-key-"
	longTermPrefix  = "ABSK"
)

// parseBearerToken reads a Bedrock API key: a short-term key's region and
// expiry come from its presigned URL's X-Amz-Credential, X-Amz-Date and
// X-Amz-Expires.
func parseBearerToken(tok string) (bearerKey, error) {
	if strings.HasPrefix(tok, longTermPrefix) {
		return bearerKey{longTerm: true}, nil
	}
	enc, ok := strings.CutPrefix(tok, shortTermPrefix)
	if !ok {
		return bearerKey{}, errors.New("it starts with neither " + shortTermPrefix + " nor " + longTermPrefix)
	}
	raw, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		if raw, err = base64.RawStdEncoding.DecodeString(enc); err != nil {
			return bearerKey{}, errors.New("its body is not base64")
		}
	}
	_, query, ok := strings.Cut(string(raw), "?")
	if !ok {
		return bearerKey{}, errors.New("its body is not a presigned URL")
	}
	q, err := url.ParseQuery(query)
	if err != nil {
		return bearerKey{}, errors.New("its presigned URL does not parse")
	}
	scope := strings.Split(q.Get("X-Amz-Credential"), "/")
	signed, err1 := time.Parse("20060102T150405Z", q.Get("X-Amz-Date"))
	secs, err2 := strconv.Atoi(q.Get("X-Amz-Expires"))
	if len(scope) != 5 || err1 != nil || err2 != nil {
		return bearerKey{}, errors.New("its presigned URL lacks X-Amz-Credential, X-Amz-Date or X-Amz-Expires")
	}
	return bearerKey{region: scope[2], expires: signed.Add(time.Duration(secs) * time.Second)}, nil
}

// sts asks STS who the credentials belong to.
func (r *run) sts(ctx context.Context) []Result {
	res := Result{Group: GroupCredentials, Check: "sts"}
	switch {
	case !r.speaksAWS():
		res.Status, res.Seen = NotRun, r.notAWS("STS")
	case r.credsErr != nil:
		res.Status, res.Seen = NotRun, "no credentials to ask STS about"
	default:
		out, err := r.STS.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
		if err != nil {
			return []Result{errorResult(res, err, "sts:GetCallerIdentity")}
		}
		res.Status = Pass
		res.Seen = fmt.Sprintf("account %s, %s", aws.ToString(out.Account), aws.ToString(out.Arn))
	}
	return []Result{res}
}

// catalogResult fills res with status and the catalog entry of code: what
// was seen, the entry's summary, and its first fix.
func catalogResult(res Result, status Status, code, seen string) Result {
	e := catalog.Must(code)
	res.Status, res.Code = status, e.Code
	res.Seen = seen + " — " + e.Summary
	if len(e.Fix) > 0 {
		res.Fix = e.Fix[0]
	}
	return res
}

// errorResult fills res with the failure of an AWS call, explained in the
// error catalog's words: a timeout or a network error, an unknown key, a
// denied permission.
func errorResult(res Result, err error, call string) Result {
	c := classify.FromError(err)
	if c.Entry == nil {
		res.Status, res.Seen = Fail, call+": "+err.Error()
		return res
	}
	msg := c.Message
	if msg == "" {
		msg = err.Error()
	}
	e := catalog.Refine(c.Entry, msg)
	return catalogResult(res, Fail, e.Code, fmt.Sprintf("%s: %s (%q)", call, e.Code, abbreviate(msg, 80)))
}

// abbreviate shortens s to at most n runes.
func abbreviate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

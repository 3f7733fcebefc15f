package emulator

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/keel-run/keel/internal/catalog"
	"github.com/keel-run/keel/internal/quotas"
)

// The two AWS APIs besides Bedrock's that the emulator answers, for `keel
// doctor` and quota discovery: STS GetCallerIdentity (the awsQuery
// protocol: a form POSTed to /, answered in XML) and Service Quotas'
// GetServiceQuota and ListServiceQuotas (awsJson1_1: POST / with
// X-Amz-Target). Both share the endpoint with Bedrock, as an SDK client
// pointed at it with BaseEndpoint sends them there.

// Signing names of the services the emulator answers.
const (
	SigningBedrock       = "bedrock"
	SigningSTS           = "sts"
	SigningServiceQuotas = "servicequotas"
	SigningS3            = "s3"
)

// serviceQuotasTarget is the X-Amz-Target prefix of Service Quotas calls.
const serviceQuotasTarget = "ServiceQuotasV20190624."

// SigningName returns the SigV4 service name a request to the emulator is
// for: SigningS3 for a request whose credential scope names s3 (the
// emulator's S3 is told apart that way alone, as its paths are any
// bucket's), SigningServiceQuotas for a POST / whose X-Amz-Target names
// Service Quotas, SigningSTS for any other POST /, SigningBedrock for the
// rest. A Verify hook uses it to check the credential scope's service.
func SigningName(r *http.Request) string {
	if credentialService(r.Header.Get("Authorization")) == SigningS3 {
		return SigningS3
	}
	if r.Method != http.MethodPost || (r.URL.Path != "/" && r.URL.Path != "") {
		return SigningBedrock
	}
	if strings.HasPrefix(r.Header.Get("X-Amz-Target"), serviceQuotasTarget) {
		return SigningServiceQuotas
	}
	return SigningSTS
}

// Now returns the emulator's time: its clock plus Options.ClockSkew.
func (s *Server) Now() time.Time {
	now := s.opts.Clock.Now()
	if f := s.opts.ClockSkew; f != nil {
		now = now.Add(f())
	}
	return now
}

// setDate sends the emulator's skewed time as the Date header when a skew
// is set; without one net/http writes the true time itself.
func (s *Server) setDate(w http.ResponseWriter) {
	if f := s.opts.ClockSkew; f != nil && f() != 0 {
		w.Header()["Date"] = []string{s.Now().UTC().Format(http.TimeFormat)}
	}
}

// serveAWS serves POST /: Service Quotas or STS.
func (x *exchange) serveAWS() {
	if !x.readBody() {
		return
	}
	if SigningName(x.r) == SigningServiceQuotas {
		x.serveServiceQuotas(strings.TrimPrefix(x.r.Header.Get("X-Amz-Target"), serviceQuotasTarget))
		return
	}
	x.serveSTS()
}

// stsAccount and stsUser are the identity GetCallerIdentity reports: AWS's
// documentation example account, as the emulator has no accounts.
const (
	stsAccount = profileAccount
	stsUser    = "keel-emulator"
)

// serveSTS answers STS's GetCallerIdentity for any signed request; the
// user id is the signature's access key.
func (x *exchange) serveSTS() {
	if v := x.s.opts.Verify; v != nil {
		if rej := v(x.r, x.body); rej != nil {
			x.failQuery(rej.Code, rej.Message)
			return
		}
	}
	form, err := url.ParseQuery(string(x.body))
	if err != nil {
		x.failQuery(catalog.CodeValidationError, "The request body is not a form.")
		return
	}
	if a := form.Get("Action"); a != "GetCallerIdentity" {
		x.failQuery(catalog.CodeInvalidAction, "Could not find operation "+a+" for version 2011-06-15")
		return
	}
	key := accessKey(x.r.Header.Get("Authorization"))
	if key == "" {
		x.failQuery(catalog.CodeMissingAuthenticationToken, "Request is missing Authentication Token")
		return
	}
	var b bytes.Buffer
	b.WriteString(`<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><GetCallerIdentityResult><Arn>`)
	xml.EscapeText(&b, []byte("arn:aws:iam::"+stsAccount+":user/"+stsUser))
	b.WriteString(`</Arn><UserId>`)
	xml.EscapeText(&b, []byte(key))
	b.WriteString(`</UserId><Account>` + stsAccount + `</Account></GetCallerIdentityResult><ResponseMetadata><RequestId>`)
	b.WriteString(x.id)
	b.WriteString(`</RequestId></ResponseMetadata></GetCallerIdentityResponse>`)
	x.writeBody(http.StatusOK, xmlContentType, b.Bytes())
}

var (
	xmlContentType     = []string{"text/xml"}
	awsJSONContentType = []string{"application/x-amz-json-1.1"}
)

// writeBody answers with status and body.
func (x *exchange) writeBody(status int, contentType []string, b []byte) {
	h := x.w.Header()
	h["Content-Type"] = contentType
	h["Content-Length"] = []string{strconv.Itoa(len(b))}
	x.w.WriteHeader(status)
	x.wroteHeader = true
	x.w.Write(b)
}

// failQuery answers an STS request with a catalog error in the awsQuery
// protocol's XML.
func (x *exchange) failQuery(code, message string) {
	e := lookupError(code, message)
	x.code = e.code
	var b bytes.Buffer
	b.WriteString(`<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type><Code>`)
	xml.EscapeText(&b, []byte(queryCode(e.code)))
	b.WriteString(`</Code><Message>`)
	xml.EscapeText(&b, []byte(e.message))
	b.WriteString(`</Message></Error><RequestId>` + x.id + `</RequestId></ErrorResponse>`)
	x.writeBody(e.status, xmlContentType, b.Bytes())
}

// queryCode spells a JSON-protocol error code as STS does: its own names
// for an unknown key and a bad or expired signature, and no "Exception"
// suffix.
func queryCode(code string) string {
	switch code {
	case catalog.CodeUnrecognizedClient:
		return catalog.CodeInvalidClientTokenID
	case catalog.CodeInvalidSignature:
		return "SignatureDoesNotMatch"
	}
	return strings.TrimSuffix(code, "Exception")
}

// accessKey returns the access key id of a SigV4 Authorization header, or "".
func accessKey(auth string) string {
	_, cred, ok := strings.Cut(auth, "Credential=")
	if !ok {
		return ""
	}
	key, _, _ := strings.Cut(cred, "/")
	return key
}

// serviceQuota is one quota the emulator's Service Quotas lists.
type serviceQuota struct {
	Name  string
	Code  string
	Value int64
}

// serviceQuotas lists the per-model quotas of region, in model-table
// order: for each model its on-demand, cross-region (the geography
// callable from region) and global tokens per minute, and its tokens per
// day (the bare id's, else the first profile's that has one), each only
// when Options.Quota limits it, so that the list and the quota meter
// agree.
func (x *exchange) serviceQuotas(region string) []serviceQuota {
	q := x.s.opts.Quota
	if q == nil {
		return nil
	}
	var out []serviceQuota
	add := func(kind quotas.Kind, model string, v int64) {
		if v <= 0 {
			return
		}
		name := quotas.Name(kind, model)
		for _, o := range out {
			if o.Name == name {
				return // a second geography callable here (jp beside apac): one quota per model
			}
		}
		out = append(out, serviceQuota{Name: name, Code: quotas.Code(name), Value: v})
	}
	for i := range x.s.list {
		m := &x.s.list[i]
		name := m.Provider + " " + m.Name
		tpm, tpd := q(m.ID, region)
		if !m.ProfileOnly {
			add(quotas.OnDemand, name, tpm)
		}
		for _, geo := range m.Profiles {
			if !profileCallable(geo, region) {
				continue
			}
			kind := quotas.CrossRegion
			if geo == GeoGlobal {
				kind = quotas.Global
			}
			ptpm, ptpd := q(geo+"."+m.ID, region)
			add(kind, name, ptpm)
			if tpd == 0 {
				tpd = ptpd // the meter keeps a day's bucket per id; Service Quotas one per model
			}
		}
		add(quotas.PerDay, name, tpd)
	}
	return out
}

// maxQuotaPage is the largest page ListServiceQuotas returns, as Service
// Quotas caps MaxResults.
const maxQuotaPage = 100

// serveServiceQuotas answers GetServiceQuota and ListServiceQuotas for
// service code bedrock, in the request's region.
func (x *exchange) serveServiceQuotas(op string) {
	if v := x.s.opts.Verify; v != nil {
		if rej := v(x.r, x.body); rej != nil {
			x.fail(rej.Code, rej.Message)
			return
		}
	}
	var in struct {
		ServiceCode string
		QuotaCode   string
		NextToken   string
		MaxResults  int
	}
	if err := json.Unmarshal(x.body, &in); err != nil {
		x.quotaError(http.StatusBadRequest, "IllegalArgumentException", "The request body is not a JSON object of the operation's input.")
		return
	}
	if op != "GetServiceQuota" && op != "ListServiceQuotas" {
		x.quotaError(http.StatusBadRequest, "UnknownOperationException", "The emulator's Service Quotas answers GetServiceQuota and ListServiceQuotas, not "+strconv.Quote(op)+".")
		return
	}
	if in.ServiceCode != quotas.ServiceCode {
		x.quotaError(http.StatusBadRequest, "NoSuchResourceException", "The request failed because the specified service does not exist: the emulator has quotas of service code bedrock only.")
		return
	}
	all := x.serviceQuotas(x.region)
	b := x.out[:0]
	if op == "GetServiceQuota" {
		i := 0
		for i < len(all) && all[i].Code != in.QuotaCode {
			i++
		}
		if i == len(all) {
			x.quotaError(http.StatusBadRequest, "NoSuchResourceException", "The request failed because the specified quota "+strconv.Quote(in.QuotaCode)+" does not exist.")
			return
		}
		b = x.appendServiceQuota(append(b, `{"Quota":`...), all[i])
		b = append(b, '}')
		x.out = b
		x.writeBody(http.StatusOK, awsJSONContentType, b)
		return
	}
	size, start := maxQuotaPage, 0
	if in.MaxResults != 0 {
		if in.MaxResults < 1 || in.MaxResults > maxQuotaPage {
			x.quotaError(http.StatusBadRequest, "IllegalArgumentException", "MaxResults must be between 1 and 100.")
			return
		}
		size = in.MaxResults
	}
	if in.NextToken != "" {
		n, err := strconv.Atoi(in.NextToken)
		if err != nil || n < 0 {
			x.quotaError(http.StatusBadRequest, "InvalidPaginationTokenException", "Invalid input: the pagination token is not one the emulator gave.")
			return
		}
		start = min(n, len(all))
	}
	end := min(start+size, len(all))
	b = append(b, `{"Quotas":[`...)
	for i, q := range all[start:end] {
		if i > 0 {
			b = append(b, ',')
		}
		b = x.appendServiceQuota(b, q)
	}
	b = append(b, ']')
	if end < len(all) {
		b = appendStringField(b, "NextToken", strconv.Itoa(end))
	}
	b = append(b, '}')
	x.out = b
	x.writeBody(http.StatusOK, awsJSONContentType, b)
}

// appendServiceQuota appends a ServiceQuota object.
func (x *exchange) appendServiceQuota(b []byte, q serviceQuota) []byte {
	b = appendStringField(append(b, '{'), "ServiceCode", quotas.ServiceCode)
	b = appendStringField(b, "ServiceName", "Amazon Bedrock")
	b = appendStringField(b, "QuotaArn", "arn:aws:servicequotas:"+x.region+":"+stsAccount+":bedrock/"+q.Code)
	b = appendStringField(b, "QuotaCode", q.Code)
	b = appendStringField(b, "QuotaName", q.Name)
	b = appendIntField(b, "Value", q.Value)
	b = appendStringField(b, "Unit", "None")
	b = append(b, `,"Adjustable":true,"GlobalQuota":false}`...)
	return b
}

// quotaError answers a Service Quotas request with one of its own errors,
// which the catalog does not hold.
func (x *exchange) quotaError(status int, code, message string) {
	x.writeError(apiError{status: status, code: code, message: message})
}

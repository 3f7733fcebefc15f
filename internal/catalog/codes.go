package catalog

// Codes of every catalog entry. AWS codes are spelled as the service sends
// them; keel's own names (for failures that carry no AWS code) are CamelCase
// in the same style.
const (
	// Modeled bedrock-runtime exceptions.
	CodeAccessDenied         = "AccessDeniedException"
	CodeConflict             = "ConflictException"
	CodeInternalServer       = "InternalServerException"
	CodeModelError           = "ModelErrorException"
	CodeModelNotReady        = "ModelNotReadyException"
	CodeModelStreamError     = "ModelStreamErrorException"
	CodeModelTimeout         = "ModelTimeoutException"
	CodeResourceNotFound     = "ResourceNotFoundException"
	CodeServiceQuotaExceeded = "ServiceQuotaExceededException"
	CodeServiceUnavailable   = "ServiceUnavailableException"
	CodeThrottling           = "ThrottlingException"
	CodeValidation           = "ValidationException"

	// Errors AWS returns before the service runs (authentication).
	CodeUnrecognizedClient         = "UnrecognizedClientException"
	CodeInvalidSignature           = "InvalidSignatureException"
	CodeExpiredToken               = "ExpiredTokenException"
	CodeMissingAuthenticationToken = "MissingAuthenticationTokenException"

	// Codes from the Bedrock API troubleshooting guide. The guide's short
	// names ServiceUnavailable, ResourceNotFound, InternalFailure and
	// ValidationError are entries of their own: they are distinct codes on
	// the wire (the AWS query-protocol spellings), with the same behaviour
	// as their bedrock-runtime counterparts.
	CodeFTUFormNotFilled            = "FTUFormNotFilled"
	CodeIncompleteSignature         = "IncompleteSignature"
	CodeInternalFailure             = "InternalFailure"
	CodeInvalidAction               = "InvalidAction"
	CodeInvalidClientTokenID        = "InvalidClientTokenId"
	CodeMarketplaceAgreementFailed  = "MarketplaceAgreementFailed"  // keel's name; the guide gives none
	CodeMarketplaceAgreementPending = "MarketplaceAgreementPending" // keel's name; the guide gives none
	CodeMPAgreementBeingCreated     = "MPAgreementBeingCreated"
	CodeNotAuthorized               = "NotAuthorized"
	CodeRequestExpired              = "RequestExpired"
	CodeGuideServiceUnavailable     = "ServiceUnavailable"
	CodeValidationError             = "ValidationError"
	CodeGuideResourceNotFound       = "ResourceNotFound"
	CodeIdleConnectionDropped       = "IdleConnectionDropped" // keel's name for the guide's idle-connection section

	// keel's names for validation errors of the 2026 models and API
	// versions; each arrives as a ValidationException.
	CodeAnthropicVersionUnsupported = "AnthropicVersionUnsupported"
	CodeAnthropicVersionUnknown     = "AnthropicVersionUnknown"
	CodeRemovedInAPIVersion         = "RemovedInAPIVersion"
	CodePrefillUnsupported          = "PrefillUnsupported"
	CodeInvalidModelIdentifier      = "InvalidModelIdentifier"
	CodeServiceTierUnsupported      = "ServiceTierUnsupported"
	CodeServiceTierUnknown          = "ServiceTierUnknown"

	// Transport failures: no usable HTTP exchange happened.
	CodeConnectionRefused   = "ConnectionRefused"
	CodeConnectionReset     = "ConnectionReset"
	CodeDNSNotFound         = "DNSNotFound"
	CodeDNSFailure          = "DNSFailure"
	CodeTLSFailure          = "TLSFailure"
	CodeClientTimeout       = "ClientTimeout"
	CodeUnknownNetworkError = "UnknownNetworkError"
	CodeUnexpectedRedirect  = "UnexpectedRedirect" // a 3xx: something on the path redirected; never followed

	// Event-stream failures.
	CodeStreamTruncated = "StreamTruncated"
	CodeStreamCorrupt   = "StreamCorrupt"
	CodeStreamStalled   = "StreamStalled"

	// The caller's context ended the call.
	CodeContextCanceled  = "ContextCanceled"
	CodeDeadlineExceeded = "DeadlineExceeded"

	// Raised by aws-sdk-go-v2 before a request is sent.
	CodeCredentialsUnavailable = "CredentialsUnavailable"
	CodeMissingRegion          = "MissingRegion"
	CodeInvalidParameters      = "InvalidParameters"

	// A reply came back, but a filter or guardrail blocked it (stop reasons).
	CodeContentFiltered     = "ContentFiltered"
	CodeGuardrailIntervened = "GuardrailIntervened"

	// keel's own verdicts.
	CodeCircuitOpen             = "CircuitOpen"
	CodeNoQuotaBeforeDeadline   = "NoQuotaBeforeDeadline"   // the quota governor: no room before the deadline
	CodeRequestTooLargeForQuota = "RequestTooLargeForQuota" // the quota governor: the request can never fit the quota
	CodeTargetOverloaded        = "TargetOverloaded"        // the quota governor: calls ask for more than the quota; no standing queue
	CodeAttemptTimeout          = "AttemptTimeout"          // one attempt took longer than keel's per-attempt timeout
	CodeResponseTruncated       = "ResponseTruncated"       // a reply's body ended before it was complete
	CodeResponseTooLarge        = "ResponseTooLarge"        // a reply (or a stream event) was larger than keel's limit

	// Fallbacks for failures with no known code (see ForStatus).
	CodeTooManyRequests    = "TooManyRequests"
	CodeUnknownClientError = "UnknownClientError"
	CodeUnknownServerError = "UnknownServerError"
	CodeUnclassified       = "Unclassified"
)

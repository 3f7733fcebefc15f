package keel

// Codes of every catalog entry (Entry.Code, Attempt.Code): AWS codes as
// the service sends them, and keel's own names for failures that carry no
// AWS code. `keel explain CODE` tells what each means.
const (
	// Modeled bedrock-runtime exceptions.
	CodeAccessDeniedException         = "AccessDeniedException"
	CodeConflictException             = "ConflictException"
	CodeInternalServerException       = "InternalServerException"
	CodeModelErrorException           = "ModelErrorException"
	CodeModelNotReadyException        = "ModelNotReadyException"
	CodeModelStreamErrorException     = "ModelStreamErrorException"
	CodeModelTimeoutException         = "ModelTimeoutException"
	CodeResourceNotFoundException     = "ResourceNotFoundException"
	CodeServiceQuotaExceededException = "ServiceQuotaExceededException"
	CodeServiceUnavailableException   = "ServiceUnavailableException"
	CodeThrottlingException           = "ThrottlingException"
	CodeValidationException           = "ValidationException"

	// Errors AWS returns before the service runs (authentication).
	CodeUnrecognizedClientException         = "UnrecognizedClientException"
	CodeInvalidSignatureException           = "InvalidSignatureException"
	CodeExpiredTokenException               = "ExpiredTokenException"
	CodeMissingAuthenticationTokenException = "MissingAuthenticationTokenException"

	// Codes of the Bedrock API troubleshooting guide (and keel names for
	// its sections that give none).
	CodeFTUFormNotFilled            = "FTUFormNotFilled"
	CodeIncompleteSignature         = "IncompleteSignature"
	CodeInternalFailure             = "InternalFailure"
	CodeInvalidAction               = "InvalidAction"
	CodeInvalidClientTokenId        = "InvalidClientTokenId"
	CodeMarketplaceAgreementFailed  = "MarketplaceAgreementFailed"
	CodeMarketplaceAgreementPending = "MarketplaceAgreementPending"
	CodeMPAgreementBeingCreated     = "MPAgreementBeingCreated"
	CodeNotAuthorized               = "NotAuthorized"
	CodeRequestExpired              = "RequestExpired"
	CodeServiceUnavailable          = "ServiceUnavailable"
	CodeValidationError             = "ValidationError"
	CodeResourceNotFound            = "ResourceNotFound"
	CodeIdleConnectionDropped       = "IdleConnectionDropped"

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
	CodeUnexpectedRedirect  = "UnexpectedRedirect"

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

	// keel's own names: content filters, keel's verdicts (breaker, quota
	// governor, limits), and failures with no known code.
	CodeContentFiltered         = "ContentFiltered"
	CodeGuardrailIntervened     = "GuardrailIntervened"
	CodeCircuitOpen             = "CircuitOpen"
	CodeAttemptTimeout          = "AttemptTimeout"
	CodeResponseTruncated       = "ResponseTruncated"
	CodeResponseTooLarge        = "ResponseTooLarge"
	CodeNoQuotaBeforeDeadline   = "NoQuotaBeforeDeadline"
	CodeTargetOverloaded        = "TargetOverloaded"
	CodeRequestTooLargeForQuota = "RequestTooLargeForQuota"
	CodeTooManyRequests         = "TooManyRequests"
	CodeUnknownClientError      = "UnknownClientError"
	CodeUnknownServerError      = "UnknownServerError"
	CodeUnclassified            = "Unclassified"
)

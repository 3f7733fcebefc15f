package catalog

import "time"

// marketplaceWait is how long an AWS Marketplace agreement can take to
// settle, per the Bedrock troubleshooting guide.
const marketplaceWait = 15 * time.Minute

// table is the catalog, in the order All returns it: the bedrock-runtime
// exceptions, the authentication errors, the troubleshooting guide's codes,
// transport, stream and client failures, SDK errors, content filters, and
// the fallbacks last.
var table = []*Entry{
	// ---- bedrock-runtime modeled exceptions ----
	{
		Code:       CodeAccessDenied,
		Aliases:    []string{"AccessDenied"},
		Status:     403,
		Category:   Access,
		Retry:      Fallback,
		FallbackOK: true,
		Summary:    "The caller is not allowed to use this model or operation.",
		Cause: "The request was signed correctly, but the identity behind it may not invoke this model here: an IAM or " +
			"service control policy denies the bedrock:InvokeModel* action for the model or inference profile ARN, " +
			"access to the model was never granted in this account, or the temporary credentials lost a permission.",
		Fix: []string{
			"Read the message: it names the action and resource that were denied; grant bedrock:InvokeModel (and " +
				"bedrock:InvokeModelWithResponseStream for streams) on that exact ARN, including the foundation-model " +
				"ARNs behind a cross-region inference profile.",
			"Check for an explicit deny in a service control policy or permission boundary; an allow elsewhere does not override it.",
			"Confirm the model is available to your account in this region (Bedrock console, Model catalog).",
			"If you use temporary credentials, check that the role you assumed is the one you expect (aws sts get-caller-identity).",
			"keel moves to the next target of the route at once: another region or model may be permitted.",
		},
		Source:         "bedrock-runtime",
		DefaultMessage: "You don't have access to the model with the specified model ID.",
	},
	{
		Code:     CodeConflict,
		Status:   400,
		Category: Validation,
		Retry:    Never,
		Summary:  "The request conflicts with the current state of a resource.",
		Cause: "Another request already created or changed the resource this one refers to, typically an asynchronous " +
			"invocation started twice with the same client request token but different parameters.",
		Fix: []string{
			"Use a new client request token for a new asynchronous job, or the same parameters when you mean to repeat one.",
			"Look up the existing job (GetAsyncInvoke, ListAsyncInvokes) instead of starting it again.",
		},
		Source:         "bedrock-runtime",
		DefaultMessage: "The request conflicts with the current state of the resource.",
	},
	{
		Code:       CodeInternalServer,
		Aliases:    []string{"InternalServerError"},
		Status:     500,
		Category:   Server,
		Retry:      Backoff,
		Unhealthy:  true,
		FallbackOK: true,
		Summary:    "Bedrock failed while handling the request.",
		Cause:      "An unexpected fault inside the service. It says nothing about the request, which may well succeed when sent again.",
		Fix: []string{
			"Retry with exponential backoff and jitter; keel does this and counts the failure against the target's circuit breaker.",
			"If it persists in one region, route to another region or a cross-region inference profile.",
			"If it persists everywhere, open an AWS Support case with the request ID.",
		},
		Source:         "bedrock-runtime",
		DefaultMessage: "The system encountered an unexpected error during processing. Try your request again.",
		Streamable:     true,
	},
	{
		Code:       CodeModelError,
		Status:     424,
		Category:   Model,
		Retry:      Never,
		FallbackOK: true,
		Summary:    "The model itself failed to process this input.",
		Cause: "The request passed validation and reached the model, but the model (or the provider's container behind " +
			"it, for imported and marketplace models) returned an error. The exception may carry the model's own status " +
			"code and resource name. The same input usually fails the same way on the same model.",
		Fix: []string{
			"Read the message and the original status code: they come from the model, not from Bedrock.",
			"Check the body against the model's own request format (InvokeModel) and its limits on input size and parameters.",
			"For an imported model, check that the model container starts and serves this kind of request.",
			"Send the request to a different model; keel does so when the route has one.",
		},
		Source:         "bedrock-runtime",
		DefaultMessage: "The model encountered an error processing the request.",
	},
	{
		Code:       CodeModelNotReady,
		Status:     429,
		Category:   Model,
		Retry:      Backoff,
		Unhealthy:  true,
		FallbackOK: true,
		Summary:    "The model is not ready to serve requests yet; retry.",
		Cause: "The model is being loaded or scaled (common for imported models after a period without traffic, and " +
			"during capacity changes). It arrives with status 429 but is not a quota: sending fewer tokens does not help, waiting does.",
		Fix: []string{
			"Retry with backoff; keel does. Note that aws-sdk-go-v2's standard retryer does not retry this code (429 is " +
				"not a retryable status and the code is not in its list), although the API documentation says the SDK retries it.",
			"For an imported model, expect the first call after an idle period to wait while the model is loaded; send a warm-up request before traffic.",
			"If it persists, route to another region or model.",
		},
		Source:         "bedrock-runtime",
		DefaultMessage: "Model is not ready to serve inference requests. Try your request again.",
	},
	{
		Code:       CodeModelStreamError,
		Status:     424,
		Category:   Stream,
		Retry:      Backoff,
		Unhealthy:  true,
		FallbackOK: true,
		Summary:    "The model failed part-way through a streamed response.",
		Cause: "The stream started, then the model behind it failed; Bedrock sent the failure as an exception frame, " +
			"often with the model's original status code and message. Part of the answer may already have been delivered.",
		Fix: []string{
			"Retry the request; keel retries invisibly when no content was delivered yet, and otherwise can resume by continuation.",
			"Read the original status code and message in the exception for the model's own reason.",
			"If one model keeps failing, route to another model or region.",
		},
		Source:         "bedrock-runtime",
		DefaultMessage: "The model encountered an error while streaming the response.",
		Streamable:     true,
	},
	{
		Code:       CodeModelTimeout,
		Status:     408,
		Category:   Model,
		Retry:      Backoff,
		Unhealthy:  true,
		FallbackOK: true,
		Summary:    "The model took too long to produce a response.",
		Cause:      "Bedrock gave up waiting for the model: a very long prompt or output, extended thinking, or a model under heavy load.",
		Fix: []string{
			"Retry with backoff; keel does.",
			"Ask for less: lower the maximum output tokens, shorten the prompt, or lower the thinking budget.",
			"Use the streaming operation for long generations, so output flows before the limit is reached.",
			"If it persists, route to another region or a faster model.",
		},
		Source:         "bedrock-runtime",
		DefaultMessage: "Model has timed out in processing the request. Try your request again.",
		Streamable:     true,
	},
	{
		Code:       CodeResourceNotFound,
		Status:     404,
		Category:   NotFound,
		Retry:      Fallback,
		FallbackOK: true,
		Summary:    "The model, inference profile or resource does not exist here.",
		Cause: "The identifier in the request does not resolve in this region and account: a typo, a model that is not " +
			"offered in this region, an inference profile ID used in the wrong geography, or a model the provider has " +
			"retired or marked legacy for accounts that have not used it recently.",
		Fix: []string{
			"Check the model ID character for character, including the version suffix (for example :0).",
			"List what this region offers: aws bedrock list-foundation-models --region <region> and aws bedrock list-inference-profiles.",
			"For a model only offered through cross-region inference, call it with the inference profile ID (us., eu., apac., global.).",
			"If the message says the model is legacy, move to its successor.",
			"keel moves to the next target of the route at once.",
		},
		Source:         "bedrock-runtime",
		DefaultMessage: "Could not resolve the foundation model from the provided model identifier.",
	},
	{
		Code:       CodeServiceQuotaExceeded,
		Status:     400,
		Category:   Quota,
		Retry:      Fallback,
		FallbackOK: true,
		Summary:    "An account service quota was exceeded; waiting a few seconds will not help.",
		Cause: "The request would exceed a quota of the account in this region that does not refill within seconds, such " +
			"as a daily token quota or a limit on concurrent jobs. It arrives with status 400, unlike the per-minute " +
			"throttling that arrives as 429.",
		Fix: []string{
			"Open the Service Quotas console for Amazon Bedrock in this region and find the quota named in the message.",
			"Request an increase, or spread the load: each region and each model has its own quotas.",
			"keel moves to the next target of the route at once; another region or model has a separate quota.",
		},
		Source:         "bedrock-runtime",
		DefaultMessage: "Your request exceeds the service quota for your account. You can view your quotas at https://console.aws.amazon.com/servicequotas/.",
	},
	{
		Code:       CodeServiceUnavailable,
		Status:     503,
		Category:   Server,
		Retry:      Backoff,
		Unhealthy:  true,
		FallbackOK: true,
		Summary:    "Bedrock is temporarily unable to serve the request.",
		Cause: "The service or the model in this region is short of capacity at the moment. This is about Bedrock's load, " +
			"not your account's quotas (those answer 429).",
		Fix: []string{
			"Retry with exponential backoff and jitter; keel does, and counts it against the target's circuit breaker.",
			"Route to another region or a cross-region inference profile, which spreads load over several regions.",
			"For steady high throughput, consider Provisioned Throughput.",
			"Check the AWS Health Dashboard for an event in the region.",
		},
		Source:         "bedrock-runtime",
		DefaultMessage: "Bedrock is unable to process your request.",
		Streamable:     true,
	},
	{
		Code:       CodeThrottling,
		Aliases:    []string{"Throttling", "ThrottledException", "RequestThrottled"},
		Status:     429,
		Category:   Quota,
		Retry:      Throttled,
		FallbackOK: true,
		Summary:    "A per-minute quota (requests or tokens) was exceeded; slow down.",
		Cause: "The account sent more requests or tokens per minute to this model in this region than its quota allows. " +
			"Tokens count when a request is accepted, including the maximum output tokens it asks for, so a few large " +
			"requests can throttle as surely as many small ones. Inside a stream it arrives as a throttlingException frame, still a 429.",
		Fix: []string{
			"Back off and retry with jitter; keel does, and its quota governor slows admission for this target.",
			"Ask for fewer output tokens: a lower maximum output reserves less of the per-minute token quota.",
			"Check the quotas for this model in the Service Quotas console, and request an increase if traffic needs it.",
			"Spread traffic over regions with a cross-region inference profile or a route with several regions.",
		},
		Source:         "bedrock-runtime",
		DefaultMessage: "Too many tokens, please wait before trying again.",
		Streamable:     true,
	},
	{
		Code:     CodeValidation,
		Status:   400,
		Category: Validation,
		Retry:    Never,
		Summary:  "The request does not meet the API's or the model's constraints.",
		Cause: "Something in the request is malformed or out of range: a missing field, a body in the wrong format for " +
			"the model, too many input tokens for the model's context, a parameter beyond its limit, or a model that " +
			"must be called through an inference profile rather than on-demand.",
		Fix: []string{
			"Read the message; it usually names the field or limit.",
			"If it says on-demand throughput is not supported, call the model through an inference profile ID instead.",
			"If the input is too long, shorten the prompt or pick a model with a larger context window.",
			"Check the body against the model's parameter documentation (InvokeModel) or the Converse API reference.",
		},
		Source:         "bedrock-runtime",
		DefaultMessage: "Malformed input request, please reformat your input and try again.",
		Streamable:     true,
	},

	// ---- authentication: returned before the service runs ----
	{
		Code:     CodeUnrecognizedClient,
		Status:   403,
		Category: Auth,
		Retry:    Never,
		Summary:  "AWS does not recognise the access key or session token.",
		Cause: "The access key ID does not exist, was deleted or deactivated, or a session token from one partition or " +
			"account setup is sent with keys it does not belong to.",
		Fix: []string{
			"Check which credentials are in use (aws sts get-caller-identity with the same profile and environment).",
			"Remove stale AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN variables that shadow your profile.",
			"Create new access keys if these were deleted, or sign in again for SSO.",
		},
		Source:         "aws-auth",
		DefaultMessage: "The security token included in the request is invalid.",
	},
	{
		Code:     CodeInvalidSignature,
		Status:   403,
		Category: Auth,
		Retry:    Never,
		Summary:  "The request's SigV4 signature does not match.",
		Cause: "The secret key does not belong to the access key, the request was changed after it was signed (a proxy " +
			"rewrote a header or the body), or the signing clock is far off.",
		Fix: []string{
			"Check that the secret access key matches the access key ID.",
			"Make sure nothing between keel and Bedrock alters the request after signing (proxies, header rewriting).",
			"Synchronise the system clock (NTP); a skewed clock also breaks signatures.",
		},
		Source:         "aws-auth",
		DefaultMessage: "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.",
	},
	{
		Code:     CodeExpiredToken,
		Status:   403,
		Category: Auth,
		Retry:    Never,
		Summary:  "The session token has expired.",
		Cause: "Temporary credentials (an assumed role, SSO, a session token in the environment) passed their expiry " +
			"time. Sending the same credentials again fails the same way.",
		Fix: []string{
			"Use a credential source that refreshes itself (a role, SSO, the container or instance provider) instead of a fixed session token.",
			"keel signs every attempt anew with the provider's current credentials, so a refreshing provider recovers on the next call; a static session token in the environment must be replaced.",
			"For SSO, sign in again: aws sso login.",
		},
		Source:         "aws-auth",
		DefaultMessage: "The security token included in the request is expired",
	},
	{
		Code:     CodeMissingAuthenticationToken,
		Aliases:  []string{"MissingAuthenticationToken"},
		Status:   403,
		Category: Auth,
		Retry:    Never,
		Summary:  "The request was not signed, or went to a path that does not exist.",
		Cause: "AWS saw no SigV4 signature or bearer token. It also answers this way when the URL path does not match " +
			"any operation, for example a wrong endpoint or a model ID that was not URL-escaped.",
		Fix: []string{
			"Check that the client signs requests (credentials are configured and found).",
			"Check the endpoint URL and path; model IDs and ARNs in the path must be URL-escaped.",
		},
		Source:         "aws-auth",
		DefaultMessage: "Missing Authentication Token",
	},

	// ---- Bedrock API troubleshooting guide ----
	{
		Code:       CodeFTUFormNotFilled,
		Status:     404,
		Category:   Access,
		Retry:      Never,
		FallbackOK: true,
		Summary:    "The Anthropic use-case form has not been submitted for this account.",
		Cause: "Anthropic models need a one-time description of your use case per account (or organization) before " +
			"first use. Until it is on file, calls answer 404 as a ResourceNotFoundException whose message mentions use case details.",
		Fix: []string{
			"Open an Anthropic model in the Bedrock console (Model catalog or playground) and submit the use-case details form, once per account.",
			"Allow up to 15 minutes after submitting before calling again.",
			"Meanwhile, a route may fall back to a model from another provider.",
		},
		Source:         "guide",
		DefaultMessage: "Model use case details have not been submitted for this account. Fill out the Anthropic use case details form before using the model. If you have already filled out the form, try again in 15 minutes.",
		Refines:        CodeResourceNotFound,
		Hints:          []string{"model use case details have not been submitted", "use case details form"},
	},
	{
		Code:     CodeIncompleteSignature,
		Aliases:  []string{"IncompleteSignatureException"},
		Status:   400,
		Category: Auth,
		Retry:    Never,
		Summary:  "The request's signature is missing required parts.",
		Cause: "The Authorization header or signing query parameters do not follow the SigV4 format: a component is " +
			"missing or mangled, usually by hand-written signing code or a proxy.",
		Fix: []string{
			"Sign with an AWS SDK signer (keel uses aws-sdk-go-v2's) rather than hand-written code.",
			"Check that access key and secret key are both configured.",
			"Make sure no proxy strips or rewrites the Authorization, X-Amz-Date or X-Amz-Security-Token headers.",
		},
		Source:         "guide",
		DefaultMessage: "The request signature does not conform to AWS standards.",
	},
	{
		Code:       CodeInternalFailure,
		Status:     500,
		Category:   Server,
		Retry:      Backoff,
		Unhealthy:  true,
		FallbackOK: true,
		Summary:    "An AWS server error (the query-protocol spelling of InternalServerException).",
		Cause:      "A fault inside AWS while processing the request; the request itself is not to blame.",
		Fix: []string{
			"Retry with exponential backoff and jitter; keel does.",
			"If it persists, route to another region, and give AWS Support the request ID.",
		},
		Source:         "guide",
		DefaultMessage: "The request processing has failed because of an unknown error, exception or failure.",
	},
	{
		Code:     CodeInvalidAction,
		Aliases:  []string{"UnknownOperationException", "UnknownOperation"},
		Status:   400,
		Category: Validation,
		Retry:    Never,
		Summary:  "The operation requested does not exist.",
		Cause: "The action name or URL path does not name a Bedrock operation: a typo, an operation of the control-plane " +
			"service (bedrock) sent to the runtime endpoint (bedrock-runtime) or the other way round, or an SDK too old to know it.",
		Fix: []string{
			"Check the operation name and that it goes to the right endpoint: inference to bedrock-runtime, model management to bedrock.",
			"Update the SDK or CLI.",
		},
		Source:         "guide",
		DefaultMessage: "The action or operation requested is invalid.",
	},
	{
		Code:     CodeInvalidClientTokenID,
		Status:   403,
		Category: Auth,
		Retry:    Never,
		Summary:  "The access key ID does not exist.",
		Cause:    "AWS has no record of the access key ID (or X.509 certificate) that signed the request.",
		Fix: []string{
			"Check the access key ID in use (aws sts get-caller-identity with the same environment).",
			"After rotating keys, make sure every process picked up the new ones.",
		},
		Source:         "guide",
		DefaultMessage: "The security token included in the request is invalid.",
	},
	{
		Code:       CodeMarketplaceAgreementFailed,
		Aliases:    []string{"MarketplaceAgreementFailure"},
		Status:     403,
		Category:   Access,
		Retry:      Never,
		FallbackOK: true,
		Summary:    "The AWS Marketplace agreement for this model failed.",
		Cause: "Models sold through AWS Marketplace need an agreement, created on first use. It failed within its first " +
			"15 minutes for a reason that retrying will not remove: commonly a payment method Marketplace will not " +
			"accept, a country where the offer is not sold, or a caller without the aws-marketplace:Subscribe and " +
			"aws-marketplace:ViewSubscriptions permissions. It arrives as an AccessDeniedException.",
		Fix: []string{
			"Read the message for the underlying reason and fix that first.",
			"Grant the caller aws-marketplace:Subscribe and aws-marketplace:ViewSubscriptions, or have an administrator subscribe once.",
			"For a payment error, add a payment method AWS Marketplace accepts (card restrictions apply to some account types, such as AISPL).",
			"After fixing, call again; a route may meanwhile fall back to another model.",
		},
		Source:         "guide",
		DefaultMessage: "Model access is denied due to IAM user or service role is not authorized to perform the required AWS Marketplace actions (aws-marketplace:ViewSubscriptions, aws-marketplace:Subscribe) to enable access to this model.",
		Refines:        CodeAccessDenied,
		Hints:          []string{"required aws marketplace actions", "aws marketplace subscription for this model cannot be completed", "invalid_payment_instrument"},
	},
	{
		Code:       CodeMarketplaceAgreementPending,
		Status:     403,
		Category:   Access,
		Retry:      LongWait,
		Wait:       marketplaceWait,
		FallbackOK: true,
		Summary:    "The AWS Marketplace agreement is still not complete after 15 minutes.",
		Cause: "The agreement for this model was requested but has neither succeeded nor failed 15 minutes later. It " +
			"arrives as an AccessDeniedException.",
		Fix: []string{
			"Try again every 15 minutes; keel parks the request (dead-letter queue) rather than spinning on it.",
			"If it is still pending after several tries, open an AWS Support case with the request ID.",
		},
		Source:         "guide",
		DefaultMessage: "Your AWS Marketplace agreement for this model is still pending. Try again later.",
		Refines:        CodeAccessDenied,
		Hints:          []string{"agreement for this model is still pending"},
	},
	{
		Code:       CodeMPAgreementBeingCreated,
		Status:     403,
		Category:   Access,
		Retry:      LongWait,
		Wait:       marketplaceWait,
		FallbackOK: true,
		Summary:    "The AWS Marketplace subscription for this model is still being set up.",
		Cause: "The first call to a Marketplace model starts its subscription; until the subscription is processed, " +
			"calls are denied.",
		Fix: []string{
			"Wait 15 minutes and call again; keel parks the request (dead-letter queue) rather than spinning on it.",
			"To avoid this on a live path, make one call to each new model ahead of traffic.",
		},
		Source:         "guide",
		DefaultMessage: "Your account is not authorized to access this model. Your AWS Marketplace subscription for this model is still being processed.",
		Refines:        CodeAccessDenied,
		Hints:          []string{"subscription for this model is still being processed"},
	},
	// Validation errors of the models and API versions of 2026, which
	// arrive as a ValidationException: keel's names, told apart by message.
	{
		Code:       CodeAnthropicVersionUnsupported,
		Status:     400,
		Category:   Validation,
		Retry:      Never,
		FallbackOK: true,
		Summary:    "The model does not take the anthropic_version the request body names.",
		Cause: "Anthropic's SDKs send anthropic_version \"2026-10-21\" in the InvokeModel body from their 2026 majors on " +
			"(@anthropic-ai/bedrock-sdk 1.x, anthropic-sdk-go/v2, the Python SDK 2.x). On Bedrock that version is " +
			"taken by Claude 4.7 and later; older Claude models take only \"bedrock-2023-05-31\" and answer 400.",
		Fix: []string{
			"Call a model that takes the version (Claude Opus 4.7, Sonnet 5 or later), or",
			"set \"anthropic_version\": \"bedrock-2023-05-31\" in the body for the older model (the SDKs keep a value the body already has), or pin the SDK's previous major.",
			"keel moves to the next target of the route: a newer model there may take the version.",
		},
		Source:         "keel",
		DefaultMessage: "anthropic_version \"2026-10-21\" is not supported by this model (claude-sonnet-4-5-20250929), which takes bedrock-2023-05-31.",
		Refines:        CodeValidation,
		Hints:          []string{"is not supported by this model (", "is not bedrock-2023-05-31"},
	},
	{
		Code:     CodeAnthropicVersionUnknown,
		Status:   400,
		Category: Validation,
		Retry:    Never,
		Summary:  "The request body names an anthropic_version no Bedrock model takes.",
		Cause: "Bedrock's InvokeModel knows two Messages API versions, \"bedrock-2023-05-31\" and \"2026-10-21\"; any " +
			"other value (the first-party header value \"2023-06-01\", a typo, a future version) is malformed input.",
		Fix: []string{
			"Set anthropic_version to \"bedrock-2023-05-31\", or to \"2026-10-21\" for Claude 4.7 and later.",
			"If an SDK sent it, upgrade the SDK's Bedrock package or set the field in the body yourself.",
		},
		Source:         "keel",
		DefaultMessage: "Malformed input request: #/anthropic_version: \"2023-06-01\" is not a known anthropic_version (bedrock-2023-05-31, 2026-10-21), please reformat your input and try again.",
		Refines:        CodeValidation,
		Hints:          []string{"is not a known anthropic_version"},
	},
	{
		Code:     CodeRemovedInAPIVersion,
		Status:   400,
		Category: Validation,
		Retry:    Never,
		Summary:  "The request uses something Messages API version 2026-10-21 removed.",
		Cause: "Under anthropic_version \"2026-10-21\" the temperature, top_p and top_k parameters are gone, a document " +
			"block may not appear in an assistant message, and user text may not carry citations; a request that " +
			"still sends them is refused.",
		Fix: []string{
			"Drop temperature, top_p and top_k from the request (steer the reply with the prompt or effort instead).",
			"Move a document block from an assistant message into a user message; drop citations from user text.",
			"Or send anthropic_version \"bedrock-2023-05-31\", which keeps the old parameters on the models that take it.",
		},
		Source:         "keel",
		DefaultMessage: "temperature: this parameter is not supported in API version 2026-10-21.",
		Refines:        CodeValidation,
		Hints:          []string{"in api version 2026-10-21"},
	},
	{
		Code:       CodePrefillUnsupported,
		Status:     400,
		Category:   Validation,
		Retry:      Never,
		FallbackOK: true,
		Summary:    "The model refuses a conversation that ends in an assistant message (a prefill).",
		Cause: "Claude 4.6 and later do not continue a partial assistant message: the last message must be the user's. " +
			"Code that steers the reply's start with a prefill, or resumes a broken stream by sending what arrived as one, gets this 400.",
		Fix: []string{
			"End the conversation with a user message; ask for the format you want in it (or use structured outputs) instead of prefilling.",
			"To continue a cut reply, send it as the assistant turn followed by a user turn asking to continue.",
			"keel moves to the next target of the route: a model up to Claude 4.5 there takes the prefill.",
		},
		Source:         "keel",
		DefaultMessage: "This model does not support assistant message prefill. The conversation must end with a user message.",
		Refines:        CodeValidation,
		Hints:          []string{"does not support assistant message prefill"},
	},
	{
		Code:       CodeInvalidModelIdentifier,
		Status:     400,
		Category:   Validation,
		Retry:      Never,
		FallbackOK: true,
		Summary:    "The model id is not one this region can invoke.",
		Cause: "The id is not a model id at all, names a geographic inference profile from a region outside its geography " +
			"(jp. outside Tokyo and Osaka, eu. outside Europe), or carries a suffix the model does not have: undated ids " +
			"from Claude 4.6 on (anthropic.claude-opus-4-6-v1, anthropic.claude-sonnet-4-6) take no \":0\".",
		Fix: []string{
			"Copy the id from the Bedrock model catalog or ListFoundationModels; drop a \":0\" from an undated Claude id.",
			"Use the global. profile, or the profile of the region's own geography.",
			"keel moves to the next target of the route, which may name another region.",
		},
		Source:         "keel",
		DefaultMessage: "The provided model identifier is invalid.",
		Refines:        CodeValidation,
		Hints:          []string{"the provided model identifier is invalid"},
	},
	{
		Code:       CodeServiceTierUnsupported,
		Status:     400,
		Category:   Validation,
		Retry:      Never,
		FallbackOK: true,
		Summary:    "The model does not offer the service tier the request names.",
		Cause: "Converse's serviceTier.type or InvokeModel's X-Amzn-Bedrock-Service-Tier header names a tier the model " +
			"(or the region) does not serve: priority and flex are offered on some models only, and reserved needs a " +
			"reservation the account holds (Bedrock answers \"Reservation not found.\").",
		Fix: []string{
			"Name a tier the model lists (ListFoundationModels, docs/models.md), or leave the tier out for the default tier.",
			"keel moves to the next target of the route, which may name another tier or model.",
		},
		Source:         "keel",
		DefaultMessage: "The provided service tier is not supported for this model.",
		Refines:        CodeValidation,
		Hints:          []string{"service tier is not supported for this model", "reservation not found"},
	},
	{
		Code:     CodeServiceTierUnknown,
		Status:   400,
		Category: Validation,
		Retry:    Never,
		Summary:  "The request names a service tier Bedrock does not know.",
		Cause: "The tier must be one of priority, default, flex or reserved; any other value (a typo, \"standard\", " +
			"\"auto\") is refused before the model is called.",
		Fix: []string{
			"Set serviceTier.type (Converse) or the X-Amzn-Bedrock-Service-Tier header (InvokeModel) to priority, default, flex or reserved.",
		},
		Source:         "keel",
		DefaultMessage: "service tier provided is invalid",
		Refines:        CodeValidation,
		Hints:          []string{"service tier provided is invalid"},
	},
	{
		Code:     CodeNotAuthorized,
		Status:   400,
		Category: Access,
		Retry:    Never,
		Summary:  "The caller has no permission for this action.",
		Cause:    "An IAM policy, a role's trust relationship, or an organization's service control policy does not allow the action.",
		Fix: []string{
			"Review the IAM policies of the user or role for the Bedrock action named in the message.",
			"For a role, check that it can be assumed by the caller and carries the policy you expect.",
			"Ask your organization's administrator about service control policies restricting Bedrock.",
		},
		Source:         "guide",
		DefaultMessage: "You do not have permission to perform this action.",
	},
	{
		Code:     CodeRequestExpired,
		Status:   400,
		Category: Auth,
		Retry:    Never,
		Summary:  "The request's signature timestamp is too old.",
		Cause: "AWS accepts a signed request for a few minutes only. Either the request was signed and sent much later, " +
			"or the clock of the signing machine is wrong.",
		Fix: []string{
			"Synchronise the system clock with NTP (containers take the host's clock).",
			"keel signs every attempt at the moment it is sent, so through keel this points at the clock: resending will not help until the clock is right.",
		},
		Source:         "guide",
		DefaultMessage: "Request has expired.",
	},
	{
		Code:       CodeGuideServiceUnavailable,
		Status:     503,
		Category:   Server,
		Retry:      Backoff,
		Unhealthy:  true,
		FallbackOK: true,
		Summary:    "AWS is temporarily unable to serve the request (the short spelling of ServiceUnavailableException).",
		Cause:      "Temporary capacity shortage or high demand in this region; unrelated to your account's quotas, which answer 429.",
		Fix: []string{
			"Retry with exponential backoff and jitter; keel does.",
			"Route to another region or a cross-region inference profile.",
			"For steady high throughput, consider Provisioned Throughput.",
		},
		Source:         "guide",
		DefaultMessage: "Service is unavailable. Try again later.",
	},
	{
		Code:     CodeValidationError,
		Status:   400,
		Category: Validation,
		Retry:    Never,
		Summary:  "The input does not meet the API's constraints (the short spelling of ValidationException).",
		Cause:    "A parameter is missing, malformed or outside its allowed range.",
		Fix: []string{
			"Read the message for the parameter at fault.",
			"Check required parameters, value ranges and patterns in the API reference of the operation.",
		},
		Source:         "guide",
		DefaultMessage: "The input fails to satisfy the constraints specified by an AWS service.",
	},
	{
		Code:       CodeGuideResourceNotFound,
		Status:     404,
		Category:   NotFound,
		Retry:      Fallback,
		FallbackOK: true,
		Summary:    "The requested resource does not exist (the short spelling of ResourceNotFoundException).",
		Cause:      "The model ID, profile, endpoint name or other identifier does not resolve in this account and region.",
		Fix: []string{
			"Check the identifier, and list what exists with ListFoundationModels and ListInferenceProfiles.",
			"keel moves to the next target of the route at once.",
		},
		Source:         "guide",
		DefaultMessage: "The requested resource could not be found.",
	},
	{
		Code:       CodeIdleConnectionDropped,
		Aliases:    []string{"NATIdleTimeout"},
		Category:   Network,
		Retry:      Backoff,
		FallbackOK: true,
		Summary:    "A pooled connection was silently dropped by the network after sitting idle.",
		Cause: "NAT gateways, interface VPC endpoints and Network Load Balancers forget a TCP connection after 350 seconds " +
			"without traffic, without telling either end. The next request on that pooled connection hangs until the " +
			"operating system gives up, then fails with a reset or timeout; long streams with quiet gaps (extended thinking) fail the same way. " +
			"It is a property of the network path, not of Bedrock, so it does not count against the target's health.",
		Fix: []string{
			"Retry on a fresh connection; keel does.",
			"Enable TCP keep-alive on the client's connections (Go's net.Dialer sends keep-alives every 15 s by default; check a custom dialer does not disable them).",
			"Make the keep-alive interval shorter than 350 s: on Linux, net.ipv4.tcp_keepalive_time defaults to 7200 s; lower it, e.g. sysctl -w net.ipv4.tcp_keepalive_time=45 (in the pod or task security context on EKS/ECS, /etc/sysctl.d on EC2), for clients that rely on the kernel's interval.",
			"Or close idle pooled connections sooner than 350 s (http.Transport.IdleConnTimeout).",
		},
		Source: "guide",
		Hints:  []string{"server closed idle connection"},
	},

	// ---- transport ----
	{
		Code:       CodeConnectionRefused,
		Aliases:    []string{"ECONNREFUSED"},
		Category:   Network,
		Retry:      Backoff,
		Unhealthy:  true,
		FallbackOK: true,
		Summary:    "The endpoint refused the TCP connection.",
		Cause:      "Nothing listens at the address the client dialled: a wrong endpoint URL or port, a local proxy or emulator that is down, or a firewall answering with a reset.",
		Fix: []string{
			"Check the endpoint URL (region, custom endpoint, proxy settings such as HTTPS_PROXY).",
			"If you use a VPC endpoint or proxy, check that it is up and reachable from this host.",
			"keel retries with backoff and, if the target stays down, falls back to the next one.",
		},
		Source: "transport",
		Hints:  []string{"connection refused"},
	},
	{
		Code:       CodeConnectionReset,
		Aliases:    []string{"ECONNRESET", "EPIPE"},
		Category:   Network,
		Retry:      Backoff,
		Unhealthy:  true,
		FallbackOK: true,
		Summary:    "The connection was reset or closed before the response was complete.",
		Cause: "The peer or something in between closed the connection: a dropped idle connection reused from the pool " +
			"(see IdleConnectionDropped), a proxy or load balancer timeout, or a network fault.",
		Fix: []string{
			"Retry; keel does so on a fresh connection, with backoff.",
			"If resets follow idle periods, apply the keep-alive fixes under IdleConnectionDropped.",
			"If they happen mid-stream, check proxy and load balancer idle timeouts on the path.",
		},
		Source: "transport",
		Hints:  []string{"connection reset", "broken pipe", "use of closed network connection", "forcibly closed by the remote host", ": eof"},
	},
	{
		Code:       CodeDNSNotFound,
		Aliases:    []string{"NXDOMAIN"},
		Category:   Network,
		Retry:      Fallback,
		FallbackOK: true,
		Summary:    "The endpoint's host name does not exist.",
		Cause:      "DNS answered that the host does not exist: a misspelled region (bedrock-runtime.<region>.amazonaws.com), a custom endpoint that is wrong, or a private DNS zone that does not cover it.",
		Fix: []string{
			"Check the region name and any custom endpoint URL.",
			"For VPC endpoints with private DNS, check the host resolves from this network (dig or nslookup).",
			"keel moves to the next target of the route at once.",
		},
		Source: "transport",
		Hints:  []string{"no such host"},
	},
	{
		Code:       CodeDNSFailure,
		Category:   Network,
		Retry:      Backoff,
		Unhealthy:  true,
		FallbackOK: true,
		Summary:    "DNS resolution failed for a temporary reason.",
		Cause:      "The resolver timed out or failed (SERVFAIL, unreachable DNS server), so no connection could be attempted.",
		Fix: []string{
			"Retry with backoff; keel does.",
			"Check the resolver configuration of the host or pod (/etc/resolv.conf, cluster DNS health).",
		},
		Source: "transport",
		Hints:  []string{"server misbehaving", "temporary failure in name resolution"},
	},
	{
		Code:     CodeTLSFailure,
		Aliases:  []string{"x509"},
		Category: Network,
		Retry:    Never,
		Summary:  "The TLS handshake failed, usually on certificate verification.",
		Cause: "The server's certificate was not trusted or did not match the host: a TLS-intercepting proxy whose CA " +
			"is not installed, a missing CA bundle in a minimal container image, or an endpoint URL that points at the wrong host.",
		Fix: []string{
			"Install the CA certificates in the image (ca-certificates), or add the proxy's CA to the trust store (SSL_CERT_FILE).",
			"Check the endpoint host name matches the certificate; do not disable verification.",
		},
		Source: "transport",
		Hints:  []string{"x509:", "tls: ", "certificate signed by unknown authority"},
	},
	{
		Code:       CodeClientTimeout,
		Aliases:    []string{"RequestTimeout", "ETIMEDOUT"},
		Category:   Network,
		Retry:      Backoff,
		Unhealthy:  true,
		FallbackOK: true,
		Summary:    "A client-side timeout expired before the response arrived.",
		Cause: "A dial, TLS handshake, response-header or read timeout fired in the client. The target was slow or " +
			"unreachable, or a pooled connection had been dropped silently.",
		Fix: []string{
			"Retry with backoff; keel does.",
			"Check the timeouts suit the call: long generations and streams need a longer response timeout than the default of many HTTP clients.",
			"If timeouts follow idle periods, see IdleConnectionDropped.",
		},
		Source: "transport",
		Hints:  []string{"i/o timeout", "client.timeout exceeded", "tls handshake timeout", "timeout awaiting response headers", "read on body reach timeout limit"},
	},
	{
		Code:       CodeUnknownNetworkError,
		Category:   Network,
		Retry:      Backoff,
		Unhealthy:  true,
		FallbackOK: true,
		Summary:    "The request could not be sent or no response was received.",
		Cause:      "A network failure keel does not name more precisely, such as an unreachable network or host.",
		Fix: []string{
			"Retry with backoff; keel does.",
			"Check connectivity to the endpoint from this host (routes, security groups, proxies).",
		},
		Source: "transport",
		Hints:  []string{"network is unreachable", "no route to host"},
	},
	{
		Code: CodeUnexpectedRedirect,
		// Any 3xx; 302 is the usual one.
		Status:     302,
		Category:   Network,
		Retry:      Fallback,
		FallbackOK: true,
		Summary:    "The endpoint answered with a redirect (HTTP 3xx); keel does not follow redirects.",
		Cause: "Bedrock Runtime never redirects, so a 3xx comes from something else on the path: a proxy, a captive " +
			"portal or a gateway in front of the endpoint, or an endpoint URL that names the wrong server, port or " +
			"scheme. Following it would send the signed request (its Authorization header and session token) and the " +
			"prompt wherever the Location header points, and take that server's answer for the model's, so keel stops " +
			"at the redirect. Retrying the same target meets the same redirect; it does not count against the target's health.",
		Fix: []string{
			"Check the endpoint URL (keel.yaml's endpoint:, --endpoint, AWS_ENDPOINT_URL_BEDROCK_RUNTIME, the client's BaseEndpoint): scheme, host, port and path.",
			"If the Location in the message is where Bedrock really is for you, and you trust it, make it the endpoint.",
			"Check proxies on the path (HTTPS_PROXY, a corporate proxy or captive portal) and exempt the Bedrock endpoint.",
			"keel moves to the route's next target, if there is one.",
		},
		Source: "transport",
		Hints:  []string{"redirect not followed", "stopped after 10 redirects"},
	},

	// ---- event stream ----
	{
		Code:       CodeStreamTruncated,
		Aliases:    []string{"UnexpectedEOF"},
		Category:   Stream,
		Retry:      Backoff,
		Unhealthy:  true,
		FallbackOK: true,
		Summary:    "The response body ended in the middle of an event-stream frame or before the stream was complete.",
		Cause: "The connection closed before the last frame arrived whole. Note that aws-sdk-go-v2 treats an unexpected " +
			"end of the body as a normal end of the stream, so with the SDK alone the reader sees a short answer and no error; keel checks frames itself.",
		Fix: []string{
			"Retry; keel does so invisibly before the first content and resumes by continuation after it.",
			"If it happens often, check proxies and load balancers on the path for body size or idle limits.",
		},
		Source: "stream",
		Hints:  []string{"unexpected eof"},
	},
	{
		Code:       CodeStreamCorrupt,
		Aliases:    []string{"ChecksumMismatch"},
		Category:   Stream,
		Retry:      Backoff,
		Unhealthy:  true,
		FallbackOK: true,
		Summary:    "An event-stream frame failed its checksum or had impossible lengths.",
		Cause:      "The bytes of a frame were damaged or misaligned on the way, typically by a proxy that alters or re-chunks the body.",
		Fix: []string{
			"Retry; keel does.",
			"Check for proxies that inspect or transform response bodies and exempt the Bedrock endpoint.",
		},
		Source: "stream",
		Hints:  []string{"message checksum mismatch", "prelude checksum mismatch", "length invalid"},
	},
	{
		Code:       CodeStreamStalled,
		Category:   Stream,
		Retry:      Backoff,
		Unhealthy:  true,
		FallbackOK: true,
		Summary:    "The stream delivered no event within the time-to-first-event or idle limit.",
		Cause:      "The connection stayed open but no frame arrived in time: the model is overloaded, or the connection was silently dropped on the way.",
		Fix: []string{
			"Retry; keel abandons the stalled stream and retries (invisibly before the first content).",
			"If stalls are frequent with extended thinking, raise the idle limit; long silent pauses are normal there.",
		},
		Source: "stream",
	},

	// ---- the caller's context ----
	{
		Code:     CodeContextCanceled,
		Aliases:  []string{"RequestCanceled"},
		Category: Client,
		Retry:    Never,
		Summary:  "The caller cancelled the call.",
		Cause:    "The context passed to the call was cancelled (a user went away, a parent operation gave up). This is the caller's choice, not a failure of Bedrock.",
		Fix: []string{
			"Nothing to fix if cancellation was intended.",
			"Otherwise, find which code cancels the context earlier than expected.",
		},
		Source: "keel",
		Hints:  []string{"context canceled"},
	},
	{
		Code:     CodeDeadlineExceeded,
		Category: Client,
		Retry:    Never,
		Summary:  "The caller's deadline passed before the call finished.",
		Cause:    "The context deadline ran out, counting all attempts and backoffs. There is no time left to retry in.",
		Fix: []string{
			"Give the call a longer deadline if the work needs it (long generations, retries under throttling).",
			"Ask for less output, or use streaming so output starts sooner.",
		},
		Source: "keel",
		Hints:  []string{"context deadline exceeded"},
	},

	// ---- aws-sdk-go-v2, before sending ----
	{
		Code:     CodeCredentialsUnavailable,
		Aliases:  []string{"NoCredentialProviders"},
		Category: Auth,
		Retry:    Never,
		Summary:  "No AWS credentials could be found or refreshed.",
		Cause:    "Every source in the credential chain failed: no environment variables, no profile, an expired SSO session, or no role on the instance, task or pod.",
		Fix: []string{
			"Check the chain: environment variables, ~/.aws/config and credentials (AWS_PROFILE), SSO (aws sso login), then the container, pod or instance role.",
			"Verify with aws sts get-caller-identity in the same environment.",
		},
		Source: "sdk",
		Hints:  []string{"failed to retrieve credentials", "failed to refresh cached credentials", "get identity: get credentials", "no ec2 imds role found"},
	},
	{
		Code:     CodeMissingRegion,
		Category: Validation,
		Retry:    Never,
		Summary:  "No AWS region is configured.",
		Cause:    "The client needs a region to build the Bedrock endpoint and to sign, and none was given in code, environment (AWS_REGION) or profile.",
		Fix: []string{
			"Set the region: AWS_REGION, region in the profile, or the target's region in keel's configuration.",
		},
		Source: "sdk",
		Hints:  []string{"missing region"},
	},
	{
		Code:     CodeInvalidParameters,
		Aliases:  []string{"InvalidParamsError", "ParamRequiredError"},
		Category: Validation,
		Retry:    Never,
		Summary:  "The SDK rejected the input before sending it.",
		Cause:    "A required parameter is missing or a value breaks a constraint the SDK checks locally (for example an empty model ID).",
		Fix: []string{
			"Read the message: it lists the parameters at fault.",
		},
		Source: "sdk",
		Hints:  []string{"validation error(s) found", "missing required field"},
	},

	// ---- content filters (stop reasons) ----
	{
		Code:     CodeContentFiltered,
		Aliases:  []string{"content_filtered", "CONTENT_FILTERED", "refusal"},
		Status:   200,
		Category: ContentFilter,
		Retry:    Never,
		Summary:  "The reply was cut off or withheld by the model's content filter.",
		Cause: "The call succeeded, but the model or its provider's safety filter stopped the output (Converse stop " +
			"reason content_filtered; some InvokeModel bodies say CONTENT_FILTERED or refusal). Sending the same request " +
			"again, or to another model, is not a fix.",
		Fix: []string{
			"Treat it as an answer, not an error: show the user that the content was filtered.",
			"Review the prompt; rephrase legitimate requests that trip the filter.",
		},
		Source: "keel",
	},
	{
		Code:     CodeGuardrailIntervened,
		Aliases:  []string{"guardrail_intervened", "INTERVENED"},
		Status:   200,
		Category: ContentFilter,
		Retry:    Never,
		Summary:  "A Bedrock guardrail blocked or rewrote the input or output.",
		Cause: "A guardrail attached to the call matched its policies (denied topics, content filters, sensitive " +
			"information, word filters) and intervened (Converse stop reason guardrail_intervened; InvokeModel " +
			"amazon-bedrock-guardrailAction INTERVENED).",
		Fix: []string{
			"Treat it as an answer: return the guardrail's blocked message to the user.",
			"If legitimate traffic is blocked, use the guardrail trace to find the policy that matched and tune it.",
		},
		Source: "keel",
	},

	// ---- keel's own verdicts ----
	{
		Code:       CodeCircuitOpen,
		Aliases:    []string{"BreakerOpen"},
		Category:   Server,
		Retry:      Fallback,
		FallbackOK: true,
		Summary:    "keel did not send the request: the target's circuit breaker is open.",
		Cause: "Recent calls to this model in this region failed often enough (5xx, timeouts, connection errors, " +
			"ModelNotReady) that keel stopped sending to it for a cool-down, so a failing target does not slow every call down.",
		Fix: []string{
			"Nothing to do if the route has another target: keel falls back to it at once.",
			"Give the route a second region or model so an open breaker never leaves a call without a target.",
			"Look at the failures that opened the breaker (metrics, logs) for the underlying cause.",
		},
		Source: "keel",
	},
	{
		Code:       CodeAttemptTimeout,
		Aliases:    []string{"ErrAttemptTimeout"},
		Category:   Server,
		Retry:      Backoff,
		Unhealthy:  true,
		FallbackOK: true,
		Summary:    "keel gave up on one attempt: the target sent no complete reply within the attempt's timeout.",
		Cause: "The model in this region hung or answered far slower than it has been answering similar calls. keel " +
			"times each non-streaming attempt out after a multiple of the reply time it has seen for calls of that size " +
			"(or retry.attempt_timeout), so that one hung region does not take the caller's whole deadline. A timeout " +
			"counts against the target's circuit breaker.",
		Fix: []string{
			"Nothing to do if the route has another target: keel moves to it at once.",
			"Give the route a second region or model, so a hung target never leaves a call without one.",
			"If healthy replies are cut off (very long outputs, a slow model), raise retry.attempt_timeout or set it to a fixed duration.",
		},
		Source: "keel",
		Hints:  []string{"per-attempt timeout", "attempt timed out"},
	},
	{
		Code:       CodeResponseTruncated,
		Category:   Network,
		Retry:      Backoff,
		Unhealthy:  true,
		FallbackOK: true,
		Summary:    "The reply's body ended before it was complete (a non-streaming call).",
		Cause: "The response headers said 200 but the connection closed (or was reset) before the whole body arrived: a proxy " +
			"or load balancer cutting the body, a dropped connection, or the service failing mid-reply. keel reads the " +
			"whole reply as part of the attempt, so a body cut short is retried like a reset instead of reaching the caller as a decoding error.",
		Fix: []string{
			"Retry; keel does so with backoff, then moves to the route's next target.",
			"If it happens often, check proxies and load balancers on the path for body size or idle limits.",
		},
		Source: "keel",
		Hints:  []string{"reply body cut short", "reply body ended"},
	},
	{
		Code:     CodeResponseTooLarge,
		Category: Network,
		Retry:    Never,
		Summary:  "keel stopped reading a reply (or a stream event) larger than its limit.",
		Cause: "No Bedrock reply comes near keel's limits (by default 64 MiB for a reply, 1 MiB for one stream event and 64 MiB " +
			"of text kept for a stream's resume), so something else answered: a misconfigured endpoint, a proxy, or a faulty " +
			"server. keel bounds what it holds in memory rather than read on until the process runs out.",
		Fix: []string{
			"Check what the endpoint is (keel.yaml's endpoint:, --endpoint, the client's BaseEndpoint).",
			"If the reply is legitimate (large images from an image model), raise limits.max_response_bytes or limits.max_event_bytes.",
		},
		Source: "keel",
		Hints:  []string{"larger than keel's limit"},
	},
	{
		Code:       CodeNoQuotaBeforeDeadline,
		Aliases:    []string{"ErrWouldExceedDeadline"},
		Category:   Quota,
		Retry:      Fallback,
		FallbackOK: true,
		Summary:    "keel did not send the request: the target's tokens-per-minute quota would have no room for it before its deadline.",
		Cause: "keel's quota governor holds each request's input estimate plus its max tokens against the target's " +
			"tokens-per-minute quota, as Bedrock does, and queues what does not fit. The quota (configured under quotas:, or " +
			"learned from ThrottlingExceptions) is taken by the calls in flight and ahead of this one, and at its refill rate " +
			"the request would start only after its deadline: the call's context, quotas.max_wait, or, for the retry after a " +
			"throttle, retry.throttle_cap. keel says so at once rather than wait for nothing.",
		Fix: []string{
			"Nothing to do if the route has another target: keel falls back to it at once (each target has its own quota).",
			"Give the call a later deadline (or raise quotas.max_wait) so it may wait its turn in keel's queue.",
			"Set or lower maxTokens: the quota holds input + max tokens until the reply ends, and an unset maxTokens holds the model's largest output (64,000 for Claude Sonnet 4 and 4.5).",
			"Send fewer tokens per minute, or raise the quota in Service Quotas; write the quota under quotas: (tokens_per_minute) so keel need not learn it from throttles.",
			"Send background work with the Batch priority (keel.WithPriority) so interactive calls go first.",
		},
		Hints:  []string{"after the deadline in", "before the deadline (waited"},
		Source: "keel",
	},
	{
		Code:       CodeTargetOverloaded,
		Aliases:    []string{"ErrOverloaded"},
		Category:   Quota,
		Retry:      Fallback,
		FallbackOK: true,
		Summary:    "keel did not send the request: calls ask the target for more tokens per minute than its quota, and this one would have had to wait in a long queue.",
		Cause: "Over the last minute, the calls to this model in this region asked for more than its tokens-per-minute " +
			"quota (what they would settle). Under such overload the quota serves as many calls whether keel's queue is short or " +
			"long, and a long queue only makes every reply later, so an interactive call whose estimated wait is longer than " +
			"quotas.queue_target (default 1s) is refused at once instead of queued. Batch calls, and the retry of a throttled " +
			"attempt, still wait until their deadline.",
		Fix: []string{
			"Nothing to do if the route has another target: keel falls back to it at once (each target has its own quota).",
			"Show the user a busy message, or send the call again a little later: the quota serves about as much as it is asked for, not more.",
			"Send background work with the Batch priority (keel.WithPriority): it waits its turn instead of being refused.",
			"Raise quotas.queue_target if interactive callers would rather wait longer than be refused.",
			"Raise the quota in Service Quotas, or spread the load over another region or a cross-region inference profile.",
		},
		Hints:  []string{"overloaded: calls asked for"},
		Source: "keel",
	},
	{
		Code:       CodeRequestTooLargeForQuota,
		Category:   Quota,
		Retry:      Never,
		FallbackOK: true,
		Summary:    "keel did not send the request: it holds more tokens than the target's tokens-per-minute quota can ever give at once.",
		Cause: "When a request starts, Bedrock reserves its input tokens plus its max tokens (the model's largest output when " +
			"maxTokens is unset) against the tokens-per-minute quota. A request whose reservation is larger than the whole " +
			"quota is throttled every time, however long it waits, so keel's quota governor refuses it at once.",
		Fix: []string{
			"Set or lower maxTokens: an unset maxTokens reserves the model's largest output (64,000 for Claude Sonnet 4 and 4.5).",
			"Shorten the input (fewer or smaller documents and images, a shorter history).",
			"Raise the target's tokens-per-minute quota in Service Quotas, and update quotas: in keel's configuration.",
			"Give the route a target with a larger quota (another region, or a cross-region inference profile): keel falls back to it.",
		},
		Hints:  []string{"can never fit"},
		Source: "keel",
	},

	// ---- fallbacks ----
	{
		Code:       CodeTooManyRequests,
		Status:     429,
		Category:   Quota,
		Retry:      Throttled,
		FallbackOK: true,
		Summary:    "A 429 without a known error code: something on the path is rate limiting.",
		Cause:      "The response had status 429 but no code keel knows, for example from a proxy or gateway with its own rate limit.",
		Fix: []string{
			"Back off and retry; keel treats it like throttling.",
			"Find which component answered (headers, body) and check its limits.",
		},
		Source: "keel",
	},
	{
		Code:     CodeUnknownClientError,
		Status:   400,
		Category: Unknown,
		Retry:    Never,
		Summary:  "A 4xx response with no code keel knows.",
		Cause:    "The request was rejected, but the response names no code in the catalog (or none at all, as with a proxy's error page).",
		Fix: []string{
			"Read the message and body for the reason.",
			"Run keel explain on the full error text; if the code is a Bedrock code keel lacks, report it.",
		},
		Source: "keel",
	},
	{
		Code:       CodeUnknownServerError,
		Status:     500,
		Category:   Server,
		Retry:      Backoff,
		Unhealthy:  true,
		FallbackOK: true,
		Summary:    "A 5xx response (or an unknown stream exception) with no code keel knows.",
		Cause:      "The service or something in front of it failed: a load balancer's 502 or 504, or a new server-side code.",
		Fix: []string{
			"Retry with backoff; keel does.",
			"If it persists, route to another region and check what answered (headers, body).",
		},
		Source: "keel",
	},
	{
		Code:     CodeUnclassified,
		Category: Unknown,
		Retry:    Never,
		Summary:  "An error keel could not classify.",
		Cause:    "The error is neither an AWS error, an HTTP response, an event-stream failure nor a known network or context error.",
		Fix: []string{
			"Read the error text; it usually comes from the calling code or configuration.",
			"If it came from Bedrock or the network, report it so the catalog can learn it.",
		},
		Source: "keel",
	},
}

// Package auth tells which configured caller sent a request to keel's
// gateway, whether that caller may use the model it names, and whether its
// share of the quota has room for the request; every refusal is the error
// Bedrock Runtime would answer, so each SDK raises its usual exception.
//
// A Caller holds credentials of two kinds, either or both:
//
//   - a bearer token, sent as "Authorization: Bearer <token>", the way the
//     AWS SDKs send an Amazon Bedrock API key (they send one only over
//     HTTPS, so bearer callers need the gateway's TLS);
//   - a SigV4 access key and secret, checked as AWS does (package
//     sigv4verify, which recomputes the signature with aws-sdk-go-v2's
//     signer): service "bedrock", any region, X-Amz-Date within 5 minutes
//     of the clock, the body's SHA-256 against X-Amz-Content-Sha256 when
//     sent.
//
// The server reads the body, then calls Authenticate for the caller,
// Allow for the model, and Budgets.Reserve for the caller's tokens:
//
//	c, err := a.Authenticate(r, body)
//	if err == nil {
//		err = a.Allow(c, modelID)
//	}
//	if err == nil {
//		release, err = budgets.Reserve(ctx, c.Name, inputTokens+maxTokens)
//	}
//	if err != nil {
//		var e *auth.Error // always, for Authenticate and Allow
//		errors.As(err, &e) // answer e.Status, X-Amzn-ErrorType e.Code, {"message": e.Message}
//	}
//	...
//	release(usedTokens) // once, when the call's usage is known; 0 if nothing was charged
//
// A server that must not read the body of a request it will refuse calls
// CheckHeaders first.
//
// The answers, in the order they are checked:
//
//	no Authorization header              403 AccessDeniedException  Authorization header is missing
//	more than one Authorization header   400 IncompleteSignature    (keel's message)
//	SigV4 in the query string            400 IncompleteSignature    (keel's message: presigned URLs are not taken)
//	Bearer: no caller has the token      403 AccessDeniedException  Authentication failed: Please make sure your API Key is valid.
//	SigV4: as package sigv4verify        400 IncompleteSignature, 403 UnrecognizedClientException, 403 InvalidSignatureException
//	model not in the caller's Models     403 AccessDeniedException  User: <caller> is not authorized to perform: bedrock:InvokeModel on resource: <model> ...
//	caller's budget has no room in time  429 ThrottlingException    Too many tokens, please wait before trying again. (and the caller's budget)
//
// docs/gateway-auth.md gives the sources of each answer.
//
// No secret (bearer token, secret access key) ever appears in an error, in
// a Caller's String, GoString, LogValue or JSON, or in what the package
// logs (it logs nothing).
package auth

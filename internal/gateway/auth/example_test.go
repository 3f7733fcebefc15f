package auth_test

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"

	"github.com/keel-run/keel/internal/gateway/auth"
)

// A gateway authenticates a request, checks its model, and reserves the
// caller's tokens; each refusal is the error Bedrock would answer.
func Example() {
	callers := []auth.Caller{{
		Name:            "team-a",
		Bearer:          "team-a-token-0123456789abcdef", // resolved from env:TEAM_A_TOKEN by the config loader
		Models:          []string{"*anthropic.claude*"},
		TokensPerMinute: 200000,
	}}
	a, err := auth.New(callers, auth.Options{})
	if err != nil {
		panic(err)
	}
	budgets, err := auth.NewBudgets(callers, nil)
	if err != nil {
		panic(err)
	}

	body := []byte(`{"messages":[{"role":"user","content":[{"text":"hi"}]}]}`)
	r := httptest.NewRequest("POST", "https://gateway.example/model/amazon.nova-pro-v1%3A0/converse", nil) // over TLS: bearer tokens need it
	r.Header.Set("Authorization", "Bearer team-a-token-0123456789abcdef")
	c, err := a.Authenticate(r, body)
	fmt.Println(c, err)

	var e *auth.Error
	err = a.Allow(c, "amazon.nova-pro-v1:0")
	if errors.As(err, &e) {
		fmt.Println(e.Status, e.Code)
	}
	err = a.Allow(c, "us.anthropic.claude-sonnet-4-5-20250929-v1:0")
	fmt.Println(err)

	release, err := budgets.Reserve(context.Background(), c.Name, 250000)
	if errors.As(err, &e) {
		fmt.Println(e.Status, e.Code, errors.Is(err, auth.ErrOverBudget))
	}
	release, err = budgets.Reserve(context.Background(), c.Name, 1200)
	fmt.Println(err)
	release(300) // the call used 300 tokens: 900 go back

	r.Header.Set("Authorization", "Bearer wrong-token-0123456789")
	_, err = a.Authenticate(r, body)
	fmt.Println(err)
	// Output:
	// caller "team-a" (bearer; models ["*anthropic.claude*"]; 200000 tokens/min) <nil>
	// 403 AccessDeniedException
	// <nil>
	// 429 ThrottlingException true
	// <nil>
	// auth: AccessDeniedException (403): Authentication failed: Please make sure your API Key is valid.
}

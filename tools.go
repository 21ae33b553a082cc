//go:build tools

// Package tools pins the code generator so that `go run github.com/99designs/gqlgen`
// uses the version recorded in go.mod.
package tools

import (
	_ "github.com/99designs/gqlgen"
)

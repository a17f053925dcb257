// Package secret reads credentials from mounted files (Kubernetes Secrets) at the moment
// they are used, so that a rotated file takes effect without a restart. Errors name the
// file, never its content.
package secret

import (
	"os"
	"strings"
)

// ReadFile returns the secret in path without the trailing newline that `echo`, editors
// and most secret tools write.
func ReadFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

// Value returns value or, when file is named, the file's content read now.
func Value(value, file string) (string, error) {
	if file == "" {
		return value, nil
	}
	return ReadFile(file)
}

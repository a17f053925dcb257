package secret

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// TLSConfig builds a client TLS configuration from PEM files: caFile, when named, is the
// only trusted CA (a private CA is the point of naming one); certFile and keyFile give a
// client certificate. The server name is left empty on purpose: dialers take it from the
// URL. Every unreadable file is reported, each by the name of its argument.
func TLSConfig(caFile, certFile, keyFile string) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	var errs []error
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("CAFile: %w", err))
		} else {
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				errs = append(errs, fmt.Errorf("CAFile: %s contains no PEM certificate", caFile))
			}
			tc.RootCAs = pool
		}
	}
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("CertFile, KeyFile: %w", err))
		} else {
			tc.Certificates = []tls.Certificate{cert}
		}
	}
	return tc, errors.Join(errs...)
}

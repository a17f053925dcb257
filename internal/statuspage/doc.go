// Package statuspage is a typed client of the SCS status page API (status-page-api
// v1.0.0 and v1.0.1): components, impact types, severities, phases, incidents and their
// updates, with the server's error answers turned into APIError and classified (Retryable,
// MaybeApplied). It knows nothing of Zuul or incident keys; package incident builds the
// lifecycle on it. statuspagefake beside it is the fake server the tests use.
package statuspage

// Package routertest holds what tests that drive core.Router directly
// share, in core and in the packages that implement its services: a
// clock the test moves, and an active app.
package routertest

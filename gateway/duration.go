package gateway

import (
	"fmt"
	"regexp"
	"time"
)

// gepDuration is the Gateway API duration syntax (GEP-2257): up to four
// groups of one to five digits and a unit among h, m, s and ms.
var gepDuration = regexp.MustCompile(`^([0-9]{1,5}(h|m|s|ms)){1,4}$`)

// parseDuration parses a Gateway API duration. It is a strict subset of Go's
// syntax, so time.ParseDuration finishes the job once the shape is checked.
func parseDuration(s string) (time.Duration, error) {
	if !gepDuration.MatchString(s) {
		return 0, fmt.Errorf("%q is not a Gateway API duration (e.g. \"10s\", \"1m30s\", \"500ms\")", s)
	}
	return time.ParseDuration(s)
}

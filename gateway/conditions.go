package gateway

import (
	"fmt"
	"strings"
	"unicode/utf8"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// verdict is the outcome behind one status condition.
type verdict struct {
	ok     bool
	reason string
	msg    string
}

func yes(reason, msg string) verdict { return verdict{ok: true, reason: reason, msg: msg} }

func no(reason, format string, args ...any) verdict {
	return verdict{reason: reason, msg: fmt.Sprintf(format, args...)}
}

// condition renders a verdict. LastTransitionTime stays zero: translation is
// pure, and the status writer stamps the time when a condition changes.
func (v verdict) condition(typ string, generation int64) metav1.Condition {
	status := metav1.ConditionFalse
	if v.ok {
		status = metav1.ConditionTrue
	}
	return metav1.Condition{Type: typ, Status: status, Reason: v.reason, Message: truncate(v.msg, maxMessage), ObservedGeneration: generation}
}

// maxMessage keeps condition messages well under the API's 32768-byte limit
// even when they quote user input.
const maxMessage = 4096

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n - len("...")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}

// maxProblems bounds how many problems one condition message lists.
const maxProblems = 8

// joinProblems renders a list of problems as one condition message.
func joinProblems(problems []string) string {
	if len(problems) <= maxProblems {
		return strings.Join(problems, "; ")
	}
	return strings.Join(problems[:maxProblems], "; ") + fmt.Sprintf("; and %d more", len(problems)-maxProblems)
}

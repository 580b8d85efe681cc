package resource

import (
	"strings"
	"testing"

	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// TestDecodePathSettings: normalize_path, merge_slashes and every
// path_with_escaped_slashes_action are accepted and decoded; a value the
// API does not define is refused.
func TestDecodePathSettings(t *testing.T) {
	for action, want := range map[hcmv3.HttpConnectionManager_PathWithEscapedSlashesAction]EscapedSlashesAction{
		hcmv3.HttpConnectionManager_IMPLEMENTATION_SPECIFIC_DEFAULT: KeepUnchanged,
		hcmv3.HttpConnectionManager_KEEP_UNCHANGED:                  KeepUnchanged,
		hcmv3.HttpConnectionManager_REJECT_REQUEST:                  RejectRequest,
		hcmv3.HttpConnectionManager_UNESCAPE_AND_REDIRECT:           UnescapeAndRedirect,
		hcmv3.HttpConnectionManager_UNESCAPE_AND_FORWARD:            UnescapeAndForward,
	} {
		l, err := DecodeListener(mustAny(t, testListener(t, testHCM(t, func(h *hcmv3.HttpConnectionManager) {
			h.NormalizePath = wrapperspb.Bool(true)
			h.MergeSlashes = true
			h.PathWithEscapedSlashesAction = action
		}))))
		if err != nil {
			t.Fatalf("%s: %v", action, err)
		}
		h := l.Chains[0].HCM
		if !h.NormalizePath || !h.MergeSlashes || h.EscapedSlashes != want {
			t.Errorf("%s: decoded normalize %v merge %v escaped slashes %d, want true true %d",
				action, h.NormalizePath, h.MergeSlashes, h.EscapedSlashes, want)
		}
	}
	_, err := DecodeListener(mustAny(t, testListener(t, testHCM(t, func(h *hcmv3.HttpConnectionManager) {
		h.PathWithEscapedSlashesAction = 9
	}))))
	if err == nil || !strings.Contains(err.Error(), "path_with_escaped_slashes_action") {
		t.Fatalf("undefined action: error %v", err)
	}
}

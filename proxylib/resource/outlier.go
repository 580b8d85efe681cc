package resource

import (
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// OutlierDetection is a cluster's passive health checking, Envoy's
// Cluster.outlier_detection with Envoy's defaults for unset fields. The
// detectors implemented are consecutive 5xx, consecutive local-origin
// failures (with split_external_local_origin_errors) and success rate;
// the allowlist refuses the others (consecutive gateway failure, failure
// percentage) and every other knob.
type OutlierDetection struct {
	Consecutive5xx          uint32
	EnforcingConsecutive5xx uint32 // percent
	// Split: local-origin events (connection failures) count apart from
	// responses; without it a connection failure counts as a 5xx.
	Split                                  bool
	ConsecutiveLocalOriginFailure          uint32
	EnforcingConsecutiveLocalOriginFailure uint32 // percent
	EnforcingSuccessRate                   uint32 // percent
	EnforcingLocalOriginSuccessRate        uint32 // percent
	SuccessRateMinimumHosts                uint32
	SuccessRateRequestVolume               uint32
	SuccessRateStdevFactor                 uint32 // thousandths
	Interval                               time.Duration
	BaseEjectionTime                       time.Duration
	MaxEjectionTime                        time.Duration
	MaxEjectionPercent                     uint32
}

// Envoy's outlier detection defaults.
const (
	defaultConsecutiveErrors  = 5
	defaultEnforcing          = 100
	defaultSRMinimumHosts     = 5
	defaultSRRequestVolume    = 100
	defaultSRStdevFactor      = 1900
	defaultOutlierInterval    = 10 * time.Second
	defaultBaseEjectionTime   = 30 * time.Second
	defaultMaxEjectionTime    = 300 * time.Second
	defaultMaxEjectionPercent = 10
)

func decodeOutlier(o *clusterv3.OutlierDetection, p path) (*OutlierDetection, error) {
	u32 := func(v *wrapperspb.UInt32Value, def uint32) uint32 {
		if v == nil {
			return def
		}
		return v.GetValue()
	}
	out := &OutlierDetection{
		Consecutive5xx:                         u32(o.GetConsecutive_5Xx(), defaultConsecutiveErrors),
		EnforcingConsecutive5xx:                u32(o.GetEnforcingConsecutive_5Xx(), defaultEnforcing),
		Split:                                  o.GetSplitExternalLocalOriginErrors(),
		ConsecutiveLocalOriginFailure:          u32(o.GetConsecutiveLocalOriginFailure(), defaultConsecutiveErrors),
		EnforcingConsecutiveLocalOriginFailure: u32(o.GetEnforcingConsecutiveLocalOriginFailure(), defaultEnforcing),
		EnforcingSuccessRate:                   u32(o.GetEnforcingSuccessRate(), defaultEnforcing),
		EnforcingLocalOriginSuccessRate:        u32(o.GetEnforcingLocalOriginSuccessRate(), defaultEnforcing),
		SuccessRateMinimumHosts:                u32(o.GetSuccessRateMinimumHosts(), defaultSRMinimumHosts),
		SuccessRateRequestVolume:               u32(o.GetSuccessRateRequestVolume(), defaultSRRequestVolume),
		SuccessRateStdevFactor:                 u32(o.GetSuccessRateStdevFactor(), defaultSRStdevFactor),
		Interval:                               duration(o.GetInterval(), defaultOutlierInterval),
		BaseEjectionTime:                       duration(o.GetBaseEjectionTime(), defaultBaseEjectionTime),
		MaxEjectionTime:                        duration(o.GetMaxEjectionTime(), defaultMaxEjectionTime),
		MaxEjectionPercent:                     u32(o.GetMaxEjectionPercent(), defaultMaxEjectionPercent),
	}
	for _, f := range []struct {
		name string
		v    uint32
	}{{"enforcing_consecutive_5xx", out.EnforcingConsecutive5xx},
		{"enforcing_consecutive_local_origin_failure", out.EnforcingConsecutiveLocalOriginFailure},
		{"enforcing_success_rate", out.EnforcingSuccessRate},
		{"enforcing_local_origin_success_rate", out.EnforcingLocalOriginSuccessRate},
		{"max_ejection_percent", out.MaxEjectionPercent}} {
		if f.v > 100 {
			return nil, fieldErr(append(p, f.name), "%d is not a percentage", f.v)
		}
	}
	if out.Interval <= 0 {
		return nil, fieldErr(append(p, "interval"), "must be positive")
	}
	if out.BaseEjectionTime <= 0 {
		return nil, fieldErr(append(p, "base_ejection_time"), "must be positive")
	}
	// Envoy never ejects for less than the base time.
	out.MaxEjectionTime = max(out.MaxEjectionTime, out.BaseEjectionTime)
	return out, nil
}

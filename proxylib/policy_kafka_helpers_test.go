package proxylib_test

import "github.com/twmb/franz-go/pkg/kmsg"

func kmsgMetadataAll() *kmsg.MetadataRequest {
	r := kmsg.NewPtrMetadataRequest()
	r.Topics = nil // all topics
	return r
}

func metadataTopics(r kmsg.Response) int {
	if m, ok := r.(*kmsg.MetadataResponse); ok {
		return len(m.Topics)
	}
	return -1
}

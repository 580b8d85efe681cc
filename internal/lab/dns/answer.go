package dns

import (
	"errors"
	"strings"

	"golang.org/x/net/dns/dnsmessage"
)

// ttl of every answer, in seconds: short, as a lab's Services change.
const ttl = 5

// maxUDP is the largest UDP answer; larger ones are truncated (TC).
const maxUDP = 512

// answer builds the response to query q from t. It returns an error only
// when q is not even a DNS header (then nothing is sent back). limit, when
// positive, bounds the response size: answers that do not fit are dropped
// and TC set.
func answer(t *table, q []byte, limit int) ([]byte, error) {
	var p dnsmessage.Parser
	h, err := p.Start(q)
	if err != nil {
		return nil, err
	}
	if h.Response {
		return nil, errors.New("not a query")
	}
	rh := dnsmessage.Header{ID: h.ID, Response: true, OpCode: h.OpCode, RecursionDesired: h.RecursionDesired}
	questions, qerr := p.AllQuestions()
	if h.OpCode != 0 {
		rh.RCode = dnsmessage.RCodeNotImplemented
		return build(rh, nil, nil, limit)
	}
	if qerr != nil || len(questions) != 1 {
		rh.RCode = dnsmessage.RCodeFormatError
		return build(rh, nil, nil, limit)
	}
	question := questions[0]
	name := strings.ToLower(question.Name.String())
	if question.Class != dnsmessage.ClassINET && question.Class != dnsmessage.ClassANY || !t.inDomain(name) {
		rh.RCode = dnsmessage.RCodeRefused
		return build(rh, &question, nil, limit)
	}
	rh.Authoritative = true
	var answers []dnsmessage.Resource
	rhdr := dnsmessage.ResourceHeader{Name: question.Name, Class: dnsmessage.ClassINET, TTL: ttl}
	wantA := question.Type == dnsmessage.TypeA || question.Type == dnsmessage.TypeALL
	switch {
	case t.cname[name] != "":
		target, err := dnsmessage.NewName(t.cname[name])
		if err != nil {
			rh.RCode = dnsmessage.RCodeServerFailure
			break
		}
		answers = append(answers, dnsmessage.Resource{Header: rhdr, Body: &dnsmessage.CNAMEResource{CNAME: target}})
	case t.exists[name]:
		if wantA {
			for _, ip := range t.a[name] {
				answers = append(answers, dnsmessage.Resource{Header: rhdr, Body: &dnsmessage.AResource{A: ip.As4()}})
			}
		}
	default:
		if ip, ok := t.podAddr(name); ok {
			if wantA {
				answers = append(answers, dnsmessage.Resource{Header: rhdr, Body: &dnsmessage.AResource{A: ip.As4()}})
			}
			break
		}
		rh.RCode = dnsmessage.RCodeNameError
	}
	return build(rh, &question, answers, limit)
}

// build packs a response, dropping answers from the end (and setting TC)
// until it fits limit.
func build(h dnsmessage.Header, q *dnsmessage.Question, answers []dnsmessage.Resource, limit int) ([]byte, error) {
	for {
		b := dnsmessage.NewBuilder(make([]byte, 0, 512), h)
		b.EnableCompression()
		if err := b.StartQuestions(); err != nil {
			return nil, err
		}
		if q != nil {
			if err := b.Question(*q); err != nil {
				return nil, err
			}
		}
		if err := b.StartAnswers(); err != nil {
			return nil, err
		}
		for _, a := range answers {
			var err error
			switch body := a.Body.(type) {
			case *dnsmessage.AResource:
				err = b.AResource(a.Header, *body)
			case *dnsmessage.CNAMEResource:
				err = b.CNAMEResource(a.Header, *body)
			}
			if err != nil {
				return nil, err
			}
		}
		out, err := b.Finish()
		if err != nil {
			return nil, err
		}
		if limit <= 0 || len(out) <= limit || len(answers) == 0 {
			return out, nil
		}
		answers = answers[:len(answers)/2]
		h.Truncated = true
	}
}

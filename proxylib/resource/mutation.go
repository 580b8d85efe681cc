package resource

import "github.com/nodemesh/nodemesh/proxylib/header"

type mutationBuilder struct{ m *header.Mutation }

func (b mutationBuilder) remove(name string) {
	b.m.Remove = append(b.m.Remove, []byte(name))
}

func (b mutationBuilder) add(name, value string, action uint8) {
	b.m.Add = append(b.m.Add, header.Op{Name: []byte(name), Value: []byte(value), Action: header.Action(action)})
}

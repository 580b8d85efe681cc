package ir

// LargestRouteTable is the number of routes in c's largest route table.
// The tables of one Gateway's listeners share most of their routes, so it
// is about the number of distinct routes, and consumers size their
// per-route indexes with it rather than growing them step by step
// through thousands of routes.
func (c *Config) LargestRouteTable() int {
	n := 0
	for _, l := range c.Listeners {
		if l == nil {
			continue
		}
		for _, ch := range l.Chains {
			if ch == nil || ch.Routes == nil {
				continue
			}
			routes := 0
			for _, vh := range ch.Routes.VirtualHosts {
				if vh != nil {
					routes += len(vh.Routes)
				}
			}
			n = max(n, routes)
		}
	}
	return n
}

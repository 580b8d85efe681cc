// Package workload holds the lab's built-in workloads: the programs lab
// Pods run for the images tests and demos use, since the lab has no
// container runtime. Each is a subcommand of `nodemesh lab workload` (the
// nodemesh-lab program), so a
// Pod is a real process with its own sockets in its own network
// namespace.
//
//	echo       HTTP server answering every request with a JSON description
//	           of it (internal/echo), named after the Pod (HOSTNAME)
//	deathstar  the deathstar of Cilium's Star Wars demo: POST
//	           /v1/request-landing answers "Ship landed", PUT
//	           /v1/exhaust-port "Panic: deathstar exploded", GET /v1/ a
//	           JSON list of the API
//	grpc-echo  gRPC server: grpc.health.v1.Health (SERVING) and server
//	           reflection, and every other method answers with the request
//	           message it received (any service, any method, unary or
//	           streaming), with the request's metadata echoed back as
//	           response headers prefixed "echo-" and the Pod's name
//	           (HOSTNAME) in the response header "echo-backend"
//	kafka      a Kafka broker (franz-go's kfake) that creates topics on
//	           first use; --topic pre-creates some
//	idle       sleeps until told to stop: the client Pods tests `lab exec`
//	           into (curl, busybox, netshoot and the like)
//	mesh-echo  the Gateway API mesh conformance echo (echo-advanced): HTTP,
//	           HTTPS, gRPC and TCP servers answering with "Key=value"
//	           lines the suite parses (meshecho.go)
//	mesh-client the same image's "client" command, which the suite runs
//	           in the Pod through exec: requests and the lines it parses
//
// Commands. An image may provide programs besides its entrypoint, which
// exec runs (Image.Commands; the node runner's Image.Commands): the mesh
// echo image's "client" is the mesh-client workload.
//
// Ports. A workload listens on every TCP port its container declares
// (the node runner passes them in NODEMESH_CONTAINER_PORTS); a container
// without ports gets the image's default from Images (echo 8080, or 80
// for Cilium's json-mock, 3000 for the Gateway API's echo-basic; deathstar 80; grpc-echo 50051; kafka 9092).
// Listeners bind every address of the Pod. The Kafka broker advertises
// the Pod's own address (its first non-loopback IPv4), so clients in
// other Pods can follow its metadata.
//
// Images maps image repositories to workloads. The mapping is deliberately
// small and named after what the images do upstream; an image that is not
// listed does not run (its Pod waits with reason ImageNotRunnable), unless
// the container's command names a local program. `nodemesh lab images`
// prints the table.
//
// Every workload stops cleanly on SIGTERM or SIGINT (exit status 0), as
// the node runner's Pod deletion sends them.
package workload

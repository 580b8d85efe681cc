package bpf

//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -cc clang -strip llvm-strip -target bpfel -type event -type policy_key -type policy_value -cflags "-O2 -g -Wall -Werror -mcpu=v3 -Iinclude" Workload workload.c
//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -cc clang -strip llvm-strip -target bpfel -no-global-types -cflags "-O2 -g -Wall -Werror -mcpu=v3 -Iinclude" Netdev netdev.c
//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -cc clang -strip llvm-strip -target bpfel -no-global-types -cflags "-O2 -g -Wall -Werror -mcpu=v3 -Iinclude" Sock sock.c

package v1

//go:generate sh gen.sh

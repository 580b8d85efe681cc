// Package dirwatch watches a directory with inotify: one wake-up per batch
// of changes to its entries, and the end of the watch when the directory
// is removed or moved away. It is the one change detector of the
// directories nodemesh reads (the file provider's configuration directory,
// the builtin issuers' shared authority directory).
//
// Events carry no detail beyond whether a wanted file was written whole
// (closed after writing, or renamed into place): callers reread the
// directory anyway, and rescan it now and then themselves, because
// inotify misses changes made through other mounts (bind mounts, a
// network file system written by another host).
package dirwatch

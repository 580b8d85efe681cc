// Package dirwatch watches a directory with inotify: one wake-up per batch
// of changes to its entries, what those changes named, and the end of the
// watch when the directory is removed or moved away. It is the one change
// detector of the directories nodemesh reads (the file provider's
// configuration directory, the builtin issuers' shared authority
// directory).
//
// A Batch says which wanted files the events named and whether one was
// written whole (closed after writing, or renamed into place), so a
// reader of a large directory can look only at those files. When the
// events cannot be narrowed — the kernel's queue overflowed, an event
// concerned the directory itself, or more than MaxNamed names came — the
// batch says All and the caller reads every file. Names are bounded so a
// writer touching many files cannot make a watch hold unbounded memory.
//
// Callers rescan now and then themselves: inotify misses changes made
// through other mounts (bind mounts, a network file system written by
// another host) and changes to the targets of symbolic links.
package dirwatch

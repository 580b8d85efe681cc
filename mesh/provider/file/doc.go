// Package file is the standalone-mode provider: it watches a directory of
// ordinary Kubernetes YAML (the same files a user would `kubectl apply`) and
// publishes an input.Snapshot whenever what they describe changes. The
// Kubernetes provider feeds the same translators from informers; this
// package only replaces "watch the API server" with "watch a folder".
//
// Data flow: inotify events on the directory (and a periodic rescan that
// catches anything inotify misses, such as edits through bind mounts) →
// debounce → read every *.yaml, *.yml and *.json file in the directory
// (not recursive; hidden files and editor temporaries are skipped) → decode
// files whose content changed → build one Snapshot → call the subscriber.
//
// Bad input never takes down what works: a file that fails to decode keeps
// contributing the objects of its last good version and its error is
// reported in Result.Errors (naming file, document, kind, name and field);
// objects that collide across files are reported and the snapshot keeps
// the last good one. A deleted file's objects disappear. The subscriber is
// called only when the snapshot or the error list actually changed.
package file

// Package file is the standalone-mode provider: it watches a directory of
// ordinary Kubernetes YAML (the same files a user would `kubectl apply`) and
// publishes an input.Snapshot whenever what they describe changes. The
// Kubernetes provider feeds the same translators from informers; this
// package only replaces "watch the API server" with "watch a folder".
//
// Data flow: inotify events on the directory (and a periodic rescan that
// catches anything inotify misses, such as edits through bind mounts) →
// debounce → read the *.yaml, *.yml and *.json files the events named (the
// rescan: every such file in the directory; not recursive; hidden files and
// editor temporaries are skipped) → decode the documents that changed in
// files whose content changed → build one Snapshot → call the subscriber.
//
// Change detection is by content hash: a file whose bytes hash as before
// is not decoded at all, and in a changed file a document whose bytes hash
// as in the file's last good version keeps the very objects decoded then
// (input.Cache), with the content hash computed when it was decoded
// (input.HashObject). Translators downstream recognise an unchanged object
// by that hash and reuse what they made of it; editing one HTTPRoute in a
// file of thousands decodes, hashes and translates that one. The
// subscriber is called only when some object's hash changed (or the
// errors did), so a comment edit publishes nothing.
//
// A read after inotify events looks only at the config files the events
// named, and at config files that are symbolic links (inotify on the
// folder does not see a change to what a link points to, such as a
// Kubernetes ConfigMap volume's data). Every other file is as it was when
// last read: the watch was in place before that read, and no event has
// named the file since. A folder of thousands of files therefore costs, per
// edit, the files being edited. A read covers every file when the events
// cannot be narrowed to names (the kernel's event queue overflowed, an
// event concerned the directory itself, more than 1024 names gathered
// before the read), when the watch is new (at start, after the directory
// was replaced), and on every rescan. The rescan is what finds changes
// inotify does not report for this folder: a file written through a hard
// link elsewhere or a shared memory mapping, a network file system
// changed from another machine.
//
// A full read does not read a file while the kernel's stamp of it (inode,
// size, modification and change times) is the one it had when it was last
// read, provided that read came more than three seconds after the file's
// last change: a write in the same timestamp tick as a read leaves the
// stamp unchanged, so only an old enough stamp stands for the content.
// Right after a tool wrote the whole folder, a full read therefore reads
// every file again; reads after events do not, since the events vouch for
// the files they do not name.
//
// Bad input never takes down what works: a file that fails to decode keeps
// contributing the objects of its last good version and its error is
// reported in Result.Errors (naming file, document, kind, name and field);
// objects that collide across files are reported and the snapshot keeps
// the last good one. A deleted file's objects disappear. The subscriber is
// called only when the snapshot or the error list actually changed.
//
// # What is read, and the limits
//
// The folder is written by an operator, but anything may end up in it, and
// no entry may block the agent or make it read without bound:
//
//   - Only regular files are read, after following symbolic links (a
//     Kubernetes ConfigMap volume is a tree of symlinks). Anything else
//     named like a config file — a FIFO, a socket, a device, a directory
//     (such as the one a container runtime creates when a bind mount's
//     source is missing), a dangling symlink or a symlink loop — is skipped
//     with an error naming it, like a file that does not decode: its last
//     good version stays in effect. When the name holds a good file again
//     the error clears, even if the content is what it was before.
//   - A path is opened with O_PATH first, which neither blocks on a FIFO
//     nor has the side effects opening some devices has, and the type and
//     size are checked on that descriptor. The file is then reopened
//     through /proc/self/fd, which yields the same inode whatever happened
//     to the directory meanwhile, so a file swapped for a FIFO or a device
//     after the check is never opened. Without /proc the path itself is
//     reopened non-blocking and the checks are repeated on the descriptor
//     read.
//   - A file over the size limit (WithMaxFileSize, --config-max-file-size
//     on nodemesh-agent; default 4 MiB) is skipped with an error. The size
//     is checked before reading and enforced while reading, in 64 KiB
//     reads, so a file that grows while it is read (or a kernel file that
//     reports size 0) costs at most the limit plus 64 KiB. Why 4 MiB:
//     decoding costs far more memory than the bytes decoded; the worst
//     shapes measured were about 100 times the input (8 MiB of empty flow
//     mappings: 0.9 GB resident, 7 s; 8 MiB of empty documents: 0.7 GB,
//     13 s). 4 MiB keeps one hostile file near half a gigabyte and a few
//     seconds, and still holds thousands of ordinary objects; the API
//     server itself refuses request bodies over 3 MiB. Bigger
//     configurations are split over several files, or the limit is raised.
//   - At most 10000 config files (WithMaxFiles, --config-max-files).
//     Names are read in batches and only config file names are kept, so
//     listing a directory stays bounded whatever else it holds. Over the
//     limit the directory is treated as unreadable (below) rather than read
//     in part: which files a partial read dropped would be arbitrary.
//   - YAML goes through sigs.k8s.io/yaml, that is go.yaml.in/yaml/v2, which
//     bounds alias expansion (a "billion laughs" document is refused once
//     nodes reached through aliases dominate what was decoded: 99% of up
//     to 400,000 nodes, falling to 10% for large documents) and nesting
//     (depth 10000). Together with the size limit that bounds decoding, so
//     no bound of our own is added; a test pins the library's behaviour.
//   - The text of one file's error is bounded: its first 10 problems, 512
//     bytes each, then how many were left out. A file with thousands of
//     bad documents cannot bloat the status and the log.
//   - A file replaced by rename while it is read is read whole, as the old
//     or the new version (it is read through one descriptor); the rename's
//     event triggers the next read.
//
// # The directory itself
//
// The directory is opened with O_DIRECTORY (and non-blocking), so a FIFO in
// its place fails at once. When it cannot be read — removed, replaced by a
// file, over the file limit — after something was published, Watch
// publishes the snapshot in effect with one error saying why (the agent
// shows it in `nodemesh status` like any input error) and keeps the state
// of every file; each rescan tries again, and once the directory is back it
// is read as usual and the error clears. At start an unreadable directory
// is an error from Watch: there is nothing to keep serving, and a wrong
// --config-dir is best reported at once.
//
// The inotify watch follows the path, not the inode: it ends when the
// directory is deleted or moved away (IN_IGNORED, IN_MOVE_SELF), and it is
// made again on the next read of the path, as it is when the path names a
// different directory than the one watched (a symlink to the folder
// switched to another). Until then the rescan (every 2 s by default) covers
// changes. `rm -rf` deletes the files before the directory; a read that
// falls between the two sees an empty folder, which is a valid, empty
// configuration. The 50 ms debounce makes that unlikely for a quick
// removal.
//
// # When the folder is read
//
// Events are gathered before the folder is read, so a burst of changes is
// read once. How long depends on what the events say. A config file
// written whole — closed after writing (IN_CLOSE_WRITE) or renamed into
// the directory (IN_MOVED_TO), which is how editors and kubectl-style
// tools replace a file — is read 5 ms after the first such event: its
// content is complete, and the settle only gathers the other files of the
// same burst. Any other event (a file opened and being written, a removal,
// a change of attributes) waits the 50 ms debounce, which gives a writer
// time to finish and an `rm -rf` time to reach the directory itself.
// Both count from the first event of a burst and later events never push
// the read back, so a writer that never stops cannot starve it. Why 5 ms:
// with the debounce alone, waiting made up most of the time from saving an
// edit to the proxy applying it; 5 ms is small next to translating and
// pushing, and a tool writing many files renames them within far less. A writer that closes a file before it is complete
// (appending in several opens) may have a partial version read; it is
// reported like any bad file, the last good version stays in effect, and
// the next close reads the complete one. WithDebounce changes both.
package file

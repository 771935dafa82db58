// Package repocheck holds tests that check the repository itself, not
// its code: every comment and document must make sense to someone who
// has only this repository.
//
// TestReferences walks the files git lists for the module (tracked ones,
// and new ones git would track, so a file is checked before its first
// commit; it skips, saying so, where git or the work tree is missing) and
// reports, as file:line, two kinds of reference in comments and documents:
//
//   - a file that lives outside the repository: the design and style
//     notes and API fact sheets kept next to it while it was written, or
//     anything in a folder beside it (testdata/outside.txt lists them, so
//     that no Go file names them). Readers of the repository do not have
//     them. Say what matters in the repository's own docs
//     (docs/architecture.md for the request path) or in the comment
//     itself.
//   - a repository path that does not exist: a relative path with a slash
//     that ends in a known file extension (proxy/doc.go), or one that
//     starts with a top-level directory of the repository (deploy/...).
//     Such a path is looked up from the repository root and from the
//     directory of the file that names it. URLs, Go import paths
//     (github.com/...), absolute paths (/var/run/..., /v1/spaces/...)
//     and globs or templates are not paths here.
//
// TestImportRules holds the production code to the import rules of
// docs/architecture.md: imports flow one way, chatapi imports nothing of
// the module but its discovery document, the emulator only those two, policy and broker not each other,
// the request path never the emulator, and nothing imports a command.
//
// Go files are checked in their comments only; Markdown and text files
// whole; YAML, shell, Python, Dockerfiles, JavaScript, Java, XML and Helm
// templates in their comments. testdata directories are skipped.
package repocheck

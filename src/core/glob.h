// Path globs as users write them in a policy (`protect: [".git/**", "**/*.pem"]`):
//   *   any run of characters except '/'
//   ?   one character except '/'
//   **  as a whole component: any number of components, including none
//       ("**/id_*" matches "id_rsa" and "a/b/id_rsa"; ".git/**" matches ".git" and below)
//   [abc], [a-z], [!x]   one character from (or not from) a set
// A pattern without '/' still matches against the whole relative path, so "*.pem" matches
// only top-level files; write "**/*.pem" for any depth. No I/O.
#pragma once

#include <string_view>

namespace airlock {

bool GlobMatch(std::string_view pattern, std::string_view path);

// A pattern is well-formed: not empty, no NUL, brackets closed, no absolute path, no "..".
bool GlobValid(std::string_view pattern, std::string* why);

}  // namespace airlock
